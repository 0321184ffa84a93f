// The two integrators of a stage, as small functions over a velocity callback (k-diffusion's shape):
// they know stage-local time u in [0, 1] and nothing of models, labels or guidance.

/** v(u, x): the (guided) velocity at stage-local time u. */
export type VelocityField = (u: number, x: Float32Array) => Promise<Float32Array>;

export class SolverError extends Error {
  override name = 'SolverError';
}

/**
 * Euler over the reference's grid u_0..u_n: x <- x + (u_{i+1} - u_i) v(u_i, x). The grid ends with
 * the jump from 0.999-ish to 1.0 that the reference makes (scheduler.ts eulerGrid).
 */
export async function eulerStage(velocity: VelocityField, x0: Float32Array, grid: readonly number[]): Promise<Float32Array> {
  let x = x0;
  for (let i = 0; i + 1 < grid.length; i++) {
    const u = grid[i] as number;
    const dt = (grid[i + 1] as number) - u;
    const v = await velocity(u, x);
    const next = new Float32Array(x.length);
    for (let j = 0; j < x.length; j++) next[j] = (x[j] as number) + dt * (v[j] as number);
    x = next;
  }
  return x;
}

// Dormand-Prince 5(4) tableau.
const C = [0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1];
const A: number[][] = [
  [],
  [1 / 5],
  [3 / 40, 9 / 40],
  [44 / 45, -56 / 15, 32 / 9],
  [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
  [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
  [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
];
const B5 = [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0];
const B4 = [5179 / 57600, 0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40];
const E = B5.map((b, i) => b - (B4[i] as number));
const SAFETY = 0.9;
const MAX_GROWTH = 10;
const MAX_SHRINK = 0.2;

export interface Dopri5Options {
  rtol: number;
  atol: number;
  /** Accepted plus rejected steps before giving up. */
  maxSteps: number;
}

function rms(values: Float32Array | Float64Array): number {
  let total = 0;
  for (let i = 0; i < values.length; i++) total += (values[i] as number) * (values[i] as number);
  return Math.sqrt(total / values.length);
}

/** y + h * sum_i coefficients[i] * k[i], skipping zero coefficients. */
function combine(y: Float32Array, h: number, coefficients: readonly number[], k: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(y.length);
  for (let j = 0; j < y.length; j++) {
    let acc = 0;
    for (let i = 0; i < coefficients.length; i++) {
      const c = coefficients[i] as number;
      if (c !== 0) acc += c * ((k[i] as Float32Array)[j] as number);
    }
    out[j] = (y[j] as number) + h * acc;
  }
  return out;
}

function stepFactor(ratio: number): number {
  if (!Number.isFinite(ratio)) return MAX_SHRINK; // the trial step overflowed
  if (ratio === 0) return MAX_GROWTH;
  const floor = ratio < 1 ? 1 : MAX_SHRINK; // never shrink after an accepted step
  return Math.min(MAX_GROWTH, Math.max(SAFETY / ratio ** (1 / 5), floor));
}

async function initialStep(f: VelocityField, y0: Float32Array, f0: Float32Array, { rtol, atol }: Dopri5Options): Promise<number> {
  const scaled = (v: Float32Array) => {
    const out = new Float64Array(v.length);
    for (let j = 0; j < v.length; j++) out[j] = (v[j] as number) / (atol + rtol * Math.abs(y0[j] as number));
    return out;
  };
  const d0 = rms(scaled(y0));
  const d1 = rms(scaled(f0));
  const h0 = d0 < 1e-5 || d1 < 1e-5 ? 1e-6 : (0.01 * d0) / d1;
  const y1 = combine(y0, h0, [1], [f0]);
  const f1 = await f(h0, y1);
  const diff = new Float32Array(f1.length);
  for (let j = 0; j < diff.length; j++) diff[j] = (f1[j] as number) - (f0[j] as number);
  const d2 = rms(scaled(diff)) / h0;
  const h1 = Math.max(d1, d2) <= 1e-15 ? Math.max(1e-6, h0 * 1e-3) : (0.01 / Math.max(d1, d2)) ** (1 / 5);
  return Math.min(100 * h0, h1);
}

/**
 * Adaptive Dormand-Prince 5(4) from u = 0 to u = 1, landing exactly on 1. Step control follows
 * torchdiffeq's defaults, which the authors' demo calls (see pytorch/pixelflow/sampler.py, which
 * this mirrors operation for operation so that both take the same steps).
 */
export async function dopri5Stage(f: VelocityField, y0: Float32Array, options: Dopri5Options): Promise<Float32Array> {
  const end = 1;
  let t = 0;
  let y = y0;
  let k1 = await f(t, y);
  let h = await initialStep(f, y, k1, options);
  for (let step = 0; step < options.maxSteps; step++) {
    if (t >= end) return y;
    h = Math.min(h, end - t);
    if (t + h === t) throw new SolverError(`Dopri5 step size underflowed to ${h.toExponential(3)} at u = ${t.toFixed(6)}`);
    const k = [k1];
    let yStage = y;
    for (let i = 1; i < 7; i++) {
      yStage = combine(y, h, A[i] as number[], k);
      k.push(await f(t + (C[i] as number) * h, yStage));
    }
    const yNew = yStage; // the 7th stage is evaluated at the 5th-order solution (FSAL)
    const errorRatio = new Float64Array(y.length);
    for (let j = 0; j < y.length; j++) {
      let acc = 0;
      for (let i = 0; i < 7; i++) {
        const e = E[i] as number;
        if (e !== 0) acc += e * ((k[i] as Float32Array)[j] as number);
      }
      const tolerance = options.atol + options.rtol * Math.max(Math.abs(y[j] as number), Math.abs(yNew[j] as number));
      errorRatio[j] = (h * acc) / tolerance;
    }
    const ratio = rms(errorRatio);
    if (ratio <= 1) {
      t = h === end - t ? end : t + h;
      y = yNew;
      k1 = k[6] as Float32Array;
    }
    h *= stepFactor(ratio);
  }
  if (t >= end) return y;
  throw new SolverError(`Dopri5 did not reach the end of the stage in ${options.maxSteps} steps (u = ${t.toFixed(6)})`);
}
