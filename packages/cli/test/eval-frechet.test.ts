import { describe, expect, it } from 'vitest';
import {
  covarianceOf,
  frechetDistance,
  FrechetError,
  gaussianOf,
  meanOf,
  sqrtPsd,
  symmetricEigen,
  traceSqrtProduct,
  type Gaussian,
} from '../src/eval/frechet.ts';

// The Fréchet distance of `pixelflow eval`, checked against closed forms and against a matrix
// square root computed another way (Denman-Beavers iteration on the non-symmetric S1 S2).

/** A small seeded generator (mulberry32), so every run checks the same matrices. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomMatrix(rows: number, cols: number, next: () => number): Float64Array {
  return Float64Array.from({ length: rows * cols }, () => 2 * next() - 1);
}

function multiply(a: ArrayLike<number>, b: ArrayLike<number>, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let k = 0; k < n; k++) sum += (a[i * n + k] as number) * (b[k * n + j] as number);
      out[i * n + j] = sum;
    }
  }
  return out;
}

function transpose(a: ArrayLike<number>, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[j * n + i] = a[i * n + j] as number;
  return out;
}

function identity(n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) out[i * n + i] = 1;
  return out;
}

function trace(a: ArrayLike<number>, n: number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += a[i * n + i] as number;
  return sum;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs((a[i] as number) - (b[i] as number)));
  return worst;
}

/** A random symmetric positive definite matrix: B B^T + n I. */
function randomSpd(n: number, next: () => number): Float64Array {
  const b = randomMatrix(n, n, next);
  const out = multiply(b, transpose(b, n), n);
  for (let i = 0; i < n; i++) out[i * n + i] = (out[i * n + i] as number) + n;
  return out;
}

/** A random orthogonal matrix: Gram-Schmidt on the columns of a random one. */
function randomOrthogonal(n: number, next: () => number): Float64Array {
  const q = randomMatrix(n, n, next);
  for (let j = 0; j < n; j++) {
    for (let k = 0; k < j; k++) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += (q[i * n + j] as number) * (q[i * n + k] as number);
      for (let i = 0; i < n; i++) q[i * n + j] = (q[i * n + j] as number) - dot * (q[i * n + k] as number);
    }
    let norm = 0;
    for (let i = 0; i < n; i++) norm += (q[i * n + j] as number) ** 2;
    for (let i = 0; i < n; i++) q[i * n + j] = (q[i * n + j] as number) / Math.sqrt(norm);
  }
  return q;
}

/** Q diag(values) Q^T. */
function withEigenvalues(q: Float64Array, values: readonly number[], n: number): Float64Array {
  const scaled = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) scaled[i * n + j] = (q[i * n + j] as number) * (values[j] as number);
  return multiply(scaled, transpose(q, n), n);
}

/** Inverse by Gauss-Jordan elimination with partial pivoting (test-only, small n). */
function inverse(a: ArrayLike<number>, n: number): Float64Array {
  const m = Float64Array.from(a);
  const inv = identity(n);
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(m[r * n + col] as number) > Math.abs(m[pivot * n + col] as number)) pivot = r;
    for (let k = 0; k < n; k++) {
      for (const x of [m, inv]) {
        const t = x[col * n + k] as number;
        x[col * n + k] = x[pivot * n + k] as number;
        x[pivot * n + k] = t;
      }
    }
    const d = m[col * n + col] as number;
    for (let k = 0; k < n; k++) {
      m[col * n + k] = (m[col * n + k] as number) / d;
      inv[col * n + k] = (inv[col * n + k] as number) / d;
    }
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const f = m[r * n + col] as number;
      for (let k = 0; k < n; k++) {
        m[r * n + k] = (m[r * n + k] as number) - f * (m[col * n + k] as number);
        inv[r * n + k] = (inv[r * n + k] as number) - f * (inv[col * n + k] as number);
      }
    }
  }
  return inv;
}

/** The principal square root of a matrix with positive eigenvalues, by Denman-Beavers iteration. */
function sqrtDenmanBeavers(a: Float64Array, n: number): Float64Array {
  let y = Float64Array.from(a);
  let z = identity(n);
  for (let i = 0; i < 100; i++) {
    const yInv = inverse(y, n);
    const zInv = inverse(z, n);
    const nextY = y.map((v, k) => 0.5 * (v + (zInv[k] as number)));
    const nextZ = z.map((v, k) => 0.5 * (v + (yInv[k] as number)));
    const change = maxAbsDiff(nextY, y);
    y = nextY;
    z = nextZ;
    if (change < 1e-14) break;
  }
  return y;
}

function gaussian(mean: readonly number[], cov: ArrayLike<number>): Gaussian {
  return { dim: mean.length, mean: Float64Array.from(mean), cov: Float64Array.from(cov) };
}

describe('mean and covariance', () => {
  it('are the column means and the N - 1 covariance, as numpy.cov(rowvar=False) computes them', () => {
    const rows = [1, 2, 3, 5, 5, 11];
    expect([...meanOf(rows, 3, 2)]).toEqual([3, 6]);
    // Centered rows (-2,-4), (0,-1), (2,5): sums of products 8, 18, 42 over N - 1 = 2.
    expect([...covarianceOf(rows, 3, 2)]).toEqual([4, 9, 9, 21]);
    const g = gaussianOf(rows, 3, 2);
    expect(g.dim).toBe(2);
    expect([...g.cov]).toEqual([4, 9, 9, 21]);
  });

  it('refuses too few rows and mismatched sizes', () => {
    expect(() => meanOf([], 0, 2)).toThrow(FrechetError);
    expect(() => covarianceOf([1, 2], 1, 2)).toThrow(/at least 2 rows/);
    expect(() => meanOf([1, 2, 3], 2, 2)).toThrow(/expected 2x2 values, got 3/);
  });
});

describe('symmetricEigen (cyclic Jacobi)', () => {
  it('recovers known eigenvalues, including zero and negative ones, with orthonormal eigenvectors', () => {
    const next = random(1);
    const n = 7;
    const expected = [5, 3.5, 1, 1, 1e-3, 0, -2];
    const a = withEigenvalues(randomOrthogonal(n, next), expected, n);
    const { values, vectors } = symmetricEigen(a, n);
    expect(maxAbsDiff([...values].sort((x, y) => y - x), expected)).toBeLessThan(1e-12);
    expect(maxAbsDiff(multiply(transpose(vectors, n), vectors, n), identity(n))).toBeLessThan(1e-12);
    // A V = V diag(values).
    const av = multiply(a, vectors, n);
    const vd = vectors.map((v, k) => v * (values[k % n] as number));
    expect(maxAbsDiff(av, vd)).toBeLessThan(1e-12);
  });

  it('decomposes a 128x128 covariance of fewer samples than features (the size eval uses)', () => {
    const next = random(2);
    const dim = 128;
    const rows = randomMatrix(40, dim, next);
    const cov = covarianceOf(rows, 40, dim);
    const { values, vectors } = symmetricEigen(cov, dim);
    // Rank at most 39: 89 eigenvalues are zero up to rounding, none is meaningfully negative.
    const sorted = [...values].sort((x, y) => y - x);
    expect(sorted[38]).toBeGreaterThan(1e-3);
    for (const l of sorted.slice(39)) expect(Math.abs(l)).toBeLessThan(1e-12);
    const rebuilt = withEigenvalues(vectors, [...values], dim);
    expect(maxAbsDiff(rebuilt, cov)).toBeLessThan(1e-12);
  });

  it('handles a diagonal and a zero matrix without iterating', () => {
    expect([...symmetricEigen([2, 0, 0, 3], 2).values]).toEqual([2, 3]);
    expect([...symmetricEigen([0, 0, 0, 0], 2).values]).toEqual([0, 0]);
  });

  it('refuses a wrong size or non-finite values', () => {
    expect(() => symmetricEigen([1, 2, 3], 2)).toThrow(/expected 2x2 = 4 values, got 3/);
    expect(() => symmetricEigen([1, Number.NaN, Number.NaN, 1], 2)).toThrow(/NaN or infinite/);
  });
});

describe('sqrtPsd', () => {
  it('squares back to the matrix, and treats rounding-negative eigenvalues as 0', () => {
    const next = random(3);
    const n = 6;
    const a = randomSpd(n, next);
    const root = sqrtPsd(a, n);
    expect(maxAbsDiff(multiply(root, root, n), a)).toBeLessThan(1e-11);
    const singular = withEigenvalues(randomOrthogonal(n, next), [4, 1, 0, 0, -1e-17, 0], n);
    const singularRoot = sqrtPsd(singular, n);
    expect(singularRoot.every(Number.isFinite)).toBe(true);
    expect(maxAbsDiff(multiply(singularRoot, singularRoot, n), singular)).toBeLessThan(1e-12);
  });
});

describe('frechetDistance', () => {
  it('is 0 for identical statistics, full rank or rank-deficient', () => {
    const next = random(4);
    for (const samples of [400, 20]) {
      const dim = 128;
      const g = gaussianOf(randomMatrix(samples, dim, next), samples, dim);
      const scale = trace(g.cov, dim) * 2;
      expect(frechetDistance(g, g) / scale).toBeLessThan(1e-9);
      // A copy, not the same object.
      expect(frechetDistance(g, gaussian([...g.mean], g.cov)) / scale).toBeLessThan(1e-9);
    }
  });

  it('is the closed form sum (sqrt(a) - sqrt(b))^2 + |mu1 - mu2|^2 for diagonal covariances', () => {
    const a = [4, 1, 0.25, 9, 0];
    const b = [1, 1, 2.25, 0.5, 3];
    const mu1 = [0, 1, 2, 3, 4];
    const mu2 = [1, 1, 0, 3, -1];
    const diag = (values: number[]): Float64Array => {
      const out = new Float64Array(values.length ** 2);
      values.forEach((v, i) => (out[i * values.length + i] = v));
      return out;
    };
    let expected = 0;
    for (let i = 0; i < a.length; i++) {
      expected += (Math.sqrt(a[i] as number) - Math.sqrt(b[i] as number)) ** 2 + ((mu1[i] as number) - (mu2[i] as number)) ** 2;
    }
    expect(frechetDistance(gaussian(mu1, diag(a)), gaussian(mu2, diag(b)))).toBeCloseTo(expected, 12);
  });

  it('is |mu1 - mu2|^2 when only the means differ', () => {
    const next = random(5);
    const cov = randomSpd(5, next);
    const d = frechetDistance(gaussian([1, 2, 3, 4, 5], cov), gaussian([1, 0, 3, 4, 6], cov));
    expect(d).toBeCloseTo(5, 9);
  });

  it('matches the 2x2 closed form Tr sqrt(M) = sqrt(Tr M + 2 sqrt(det M)), M = S1 S2', () => {
    const s1 = [2, 0.6, 0.6, 1];
    const s2 = [0.5, -0.2, -0.2, 3];
    const m = multiply(s1, s2, 2);
    const det = (m[0] as number) * (m[3] as number) - (m[1] as number) * (m[2] as number);
    const traceSqrt = Math.sqrt(trace(m, 2) + 2 * Math.sqrt(det));
    expect(traceSqrtProduct(s1, s2, 2)).toBeCloseTo(traceSqrt, 13);
    const mu1 = [0.3, -1];
    const mu2 = [1, 0.5];
    const expected = (0.3 - 1) ** 2 + (-1 - 0.5) ** 2 + trace(s1, 2) + trace(s2, 2) - 2 * traceSqrt;
    expect(frechetDistance(gaussian(mu1, s1), gaussian(mu2, s2))).toBeCloseTo(expected, 12);
  });

  it('agrees with a Denman-Beavers square root of S1 S2, and is symmetric in the two', () => {
    const next = random(6);
    const n = 6;
    const s1 = randomSpd(n, next);
    const s2 = randomSpd(n, next);
    const independent = trace(sqrtDenmanBeavers(multiply(s1, s2, n), n), n);
    const ours = traceSqrtProduct(s1, s2, n);
    expect(Math.abs(ours - independent) / independent).toBeLessThan(1e-10);
    expect(Math.abs(traceSqrtProduct(s2, s1, n) - ours) / ours).toBeLessThan(1e-12);

    const a = gaussian([...randomMatrix(1, n, next)], s1);
    const b = gaussian([...randomMatrix(1, n, next)], s2);
    const d = frechetDistance(a, b);
    expect(d).toBeGreaterThan(0);
    expect(Math.abs(frechetDistance(b, a) - d) / d).toBeLessThan(1e-12);
  });

  it('refuses distributions of different sizes and non-finite statistics', () => {
    const g2 = gaussian([0, 0], [1, 0, 0, 1]);
    const g3 = gaussian([0, 0, 0], [1, 0, 0, 0, 1, 0, 0, 0, 1]);
    expect(() => frechetDistance(g2, g3)).toThrow(/2 and 3 features/);
    expect(() => frechetDistance(g2, gaussian([0, Number.NaN], [1, 0, 0, 1]))).toThrow(/second mean contains NaN/);
  });
});
