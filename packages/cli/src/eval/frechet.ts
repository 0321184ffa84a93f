// The Fréchet distance between two Gaussians, as FID computes it over classifier features:
//
//   d = ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr(sqrt(S1 S2))
//
// S1 S2 is not symmetric, but it is similar to the symmetric PSD matrix sqrt(S1) S2 sqrt(S1), so
// Tr(sqrt(S1 S2)) is the sum of the square roots of that matrix's eigenvalues. Both square roots
// come from symmetric eigendecompositions (cyclic Jacobi, float64), which stay exact enough for
// the rank-deficient covariances a few hundred samples of 128 features give, where a general
// matrix square root would need complex arithmetic. Matrices are row-major Float64Arrays.

/** A feature distribution summarised by its mean [dim] and covariance [dim, dim]. */
export interface Gaussian {
  dim: number;
  mean: Float64Array;
  cov: Float64Array;
}

export interface SymmetricEigen {
  /** Eigenvalues, in no particular order. */
  values: Float64Array;
  /** Row-major [n, n]; column j is the unit eigenvector of values[j]. */
  vectors: Float64Array;
}

export class FrechetError extends Error {
  override name = 'FrechetError';
}

function checkMatrix(a: ArrayLike<number>, n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 1) throw new FrechetError(`${what}: size must be a positive integer, not ${n}`);
  if (a.length !== n * n) throw new FrechetError(`${what}: expected ${n}x${n} = ${n * n} values, got ${a.length}`);
}

function checkFinite(a: ArrayLike<number>, what: string): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new FrechetError(`${what} contains NaN or infinite values`);
  }
}

/** Column means of `rows` [count, dim] (row-major). */
export function meanOf(rows: ArrayLike<number>, count: number, dim: number): Float64Array {
  if (!Number.isSafeInteger(count) || count < 1) throw new FrechetError(`mean needs at least one row, got ${count}`);
  if (rows.length !== count * dim) throw new FrechetError(`expected ${count}x${dim} values, got ${rows.length}`);
  const mean = new Float64Array(dim);
  for (let r = 0; r < count; r++) {
    for (let j = 0; j < dim; j++) mean[j] = (mean[j] as number) + (rows[r * dim + j] as number);
  }
  for (let j = 0; j < dim; j++) mean[j] = (mean[j] as number) / count;
  return mean;
}

/**
 * Sample covariance of `rows` [count, dim] with the unbiased count - 1 divisor, as
 * `numpy.cov(rows, rowvar=False)` computes it (the held-out statistics are made that way).
 */
export function covarianceOf(rows: ArrayLike<number>, count: number, dim: number, mean = meanOf(rows, count, dim)): Float64Array {
  if (count < 2) throw new FrechetError(`a covariance needs at least 2 rows, got ${count}`);
  if (mean.length !== dim) throw new FrechetError(`mean has ${mean.length} values for ${dim} columns`);
  const centered = new Float64Array(count * dim);
  for (let r = 0; r < count; r++) {
    for (let j = 0; j < dim; j++) centered[r * dim + j] = (rows[r * dim + j] as number) - (mean[j] as number);
  }
  const cov = new Float64Array(dim * dim);
  for (let i = 0; i < dim; i++) {
    for (let j = i; j < dim; j++) {
      let sum = 0;
      for (let r = 0; r < count; r++) sum += (centered[r * dim + i] as number) * (centered[r * dim + j] as number);
      const value = sum / (count - 1);
      cov[i * dim + j] = value;
      cov[j * dim + i] = value;
    }
  }
  return cov;
}

/** The Gaussian of a set of feature rows [count, dim]. */
export function gaussianOf(rows: ArrayLike<number>, count: number, dim: number): Gaussian {
  const mean = meanOf(rows, count, dim);
  return { dim, mean, cov: covarianceOf(rows, count, dim, mean) };
}

const MAX_SWEEPS = 100;

/**
 * Eigenvalues and eigenvectors of a symmetric matrix by the cyclic Jacobi method: sweep over
 * every off-diagonal pair (p, q) and rotate it to zero, until every off-diagonal entry is below
 * rounding relative to the whole matrix. Quadratically convergent: about 6-10 sweeps for n = 128.
 * The input is symmetrised first, (A + A^T) / 2, so a covariance's rounding asymmetry does no harm.
 */
export function symmetricEigen(matrix: ArrayLike<number>, n: number): SymmetricEigen {
  checkMatrix(matrix, n, 'symmetricEigen');
  checkFinite(matrix, 'symmetricEigen: the matrix');
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) a[i * n + j] = 0.5 * ((matrix[i * n + j] as number) + (matrix[j * n + i] as number));
  }
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;

  let norm = 0;
  for (let i = 0; i < n * n; i++) norm += (a[i] as number) ** 2;
  // Entries below this are rounding noise next to the matrix as a whole: rotating them away
  // changes no eigenvalue by more than the rounding already in them, and skipping them is what
  // lets the iteration end (rotations keep stirring up noise of that size).
  const negligible = (Number.EPSILON * Math.sqrt(norm)) / n;

  for (let sweep = 0; ; sweep++) {
    let largest = 0;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) largest = Math.max(largest, Math.abs(a[p * n + q] as number));
    }
    if (largest <= negligible) break;
    if (sweep >= MAX_SWEEPS) throw new FrechetError(`symmetricEigen: no convergence after ${MAX_SWEEPS} sweeps`);

    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q] as number;
        if (Math.abs(apq) <= negligible) continue;
        const app = a[p * n + p] as number;
        const aqq = a[q * n + q] as number;
        // The rotation J with J_pp = J_qq = c, J_pq = s, J_qp = -s makes (J^T A J)_pq zero
        // (Golub & Van Loan, Algorithm 8.5.1); t is the smaller root, so |angle| <= pi/4.
        const tau = (aqq - app) / (2 * apq);
        const t = (tau >= 0 ? 1 : -1) / (Math.abs(tau) + Math.hypot(1, tau));
        const c = 1 / Math.hypot(1, t);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          // A <- A J (columns p and q), V <- V J.
          const akp = a[k * n + p] as number;
          const akq = a[k * n + q] as number;
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
          const vkp = v[k * n + p] as number;
          const vkq = v[k * n + q] as number;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
        for (let k = 0; k < n; k++) {
          // A <- J^T A (rows p and q).
          const apk = a[p * n + k] as number;
          const aqk = a[q * n + k] as number;
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        a[p * n + q] = 0;
        a[q * n + p] = 0;
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = a[i * n + i] as number;
  return { values, vectors: v };
}

/**
 * The symmetric PSD square root V diag(sqrt(max(l, 0))) V^T of a symmetric PSD matrix. Eigenvalues
 * a rounding error below zero (a covariance of fewer samples than features is singular) count as 0.
 */
export function sqrtPsd(matrix: ArrayLike<number>, n: number): Float64Array {
  const { values, vectors } = symmetricEigen(matrix, n);
  const roots = values.map((l) => Math.sqrt(Math.max(l, 0)));
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let sum = 0;
      for (let k = 0; k < n; k++) sum += (vectors[i * n + k] as number) * (roots[k] as number) * (vectors[j * n + k] as number);
      out[i * n + j] = sum;
      out[j * n + i] = sum;
    }
  }
  return out;
}

/** a [n, n] times b [n, n], row-major. */
function multiply(a: Float64Array, b: ArrayLike<number>, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k] as number;
      if (aik === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j] = (out[i * n + j] as number) + aik * (b[k * n + j] as number);
    }
  }
  return out;
}

/** Tr(sqrt(S1 S2)) for symmetric PSD S1, S2: the sum of sqrt(eigenvalues) of sqrt(S1) S2 sqrt(S1). */
export function traceSqrtProduct(s1: ArrayLike<number>, s2: ArrayLike<number>, n: number): number {
  checkMatrix(s1, n, 'traceSqrtProduct: S1');
  checkMatrix(s2, n, 'traceSqrtProduct: S2');
  const root = sqrtPsd(s1, n);
  const inner = multiply(multiply(root, s2, n), root, n);
  const { values } = symmetricEigen(inner, n);
  let sum = 0;
  for (const l of values) sum += Math.sqrt(Math.max(l, 0));
  return sum;
}

function trace(a: ArrayLike<number>, n: number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += a[i * n + i] as number;
  return sum;
}

/**
 * The Fréchet distance between two Gaussians. Never negative: a result a rounding error below
 * zero (identical statistics) is reported as 0.
 */
export function frechetDistance(a: Gaussian, b: Gaussian): number {
  const n = a.dim;
  if (b.dim !== n) throw new FrechetError(`the two distributions have ${a.dim} and ${b.dim} features`);
  if (a.mean.length !== n || b.mean.length !== n) throw new FrechetError(`a mean must have ${n} values`);
  checkMatrix(a.cov, n, 'frechetDistance: the first covariance');
  checkMatrix(b.cov, n, 'frechetDistance: the second covariance');
  for (const [values, what] of [
    [a.mean, 'the first mean'],
    [b.mean, 'the second mean'],
    [a.cov, 'the first covariance'],
    [b.cov, 'the second covariance'],
  ] as const) {
    checkFinite(values, `frechetDistance: ${what}`);
  }
  let meanTerm = 0;
  for (let i = 0; i < n; i++) meanTerm += ((a.mean[i] as number) - (b.mean[i] as number)) ** 2;
  const d = meanTerm + trace(a.cov, n) + trace(b.cov, n) - 2 * traceSqrtProduct(a.cov, b.cov, n);
  return Math.max(0, d);
}
