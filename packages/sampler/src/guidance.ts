import type { Shape4, VelocityModel } from './model.ts';

// Classifier-free guidance as the reference does it: the null-label and class halves in ONE model
// call of batch 2B, v = v_null + scale (v_class - v_null). At scale exactly 1 that is v_class, so
// the null half is skipped (the coarsest stage always has scale 1 under the stage ramp).

export interface GuidanceInput {
  model: VelocityModel;
  x: Float32Array;
  shape: Shape4;
  /** Model timestep, the same for every image. */
  timestep: number;
  classLabels: BigInt64Array;
  nullLabel: number;
  scale: number;
  /** Compute both halves even at scale 1 (tests compare the two ways). */
  alwaysBothHalves?: boolean;
}

export async function guidedVelocity(input: GuidanceInput): Promise<Float32Array> {
  const { model, x, shape, timestep, classLabels, nullLabel, scale } = input;
  const batch = shape[0];
  if (scale === 1 && !input.alwaysBothHalves) {
    return model.predict(x, shape, new Float32Array(batch).fill(timestep), classLabels);
  }
  const doubled = new Float32Array(2 * x.length);
  doubled.set(x);
  doubled.set(x, x.length);
  const labels = new BigInt64Array(2 * batch).fill(BigInt(nullLabel));
  labels.set(classLabels, batch);
  const both = await model.predict(
    doubled,
    [2 * batch, shape[1], shape[2], shape[3]],
    new Float32Array(2 * batch).fill(timestep),
    labels,
  );
  const half = x.length;
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const vNull = both[i] as number;
    out[i] = vNull + scale * ((both[half + i] as number) - vNull);
  }
  return out;
}
