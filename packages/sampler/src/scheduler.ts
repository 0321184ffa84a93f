import type { ModelManifest } from '@pixelflow/schemas';

// The cascade's stages (PIXELFLOW.md section 3) for any number of stages and train timesteps.
// Computed in float64 with the same operations, in the same order, as pytorch/pixelflow/scheduler.py,
// so both sides produce bit-identical constants; tests pin them to the spec's table.

export const DEFAULT_GAMMA = -1 / 3;
/** The reference's within-stage grid stops at 0.999 before its final jump to 1.0. */
export const STAGE_GRID_END = 0.999;

export interface Stage {
  index: number;
  /** Side of the square state at this stage, in pixels. */
  resolution: number;
  startT: number;
  endT: number;
  /** Model timestep at stage-local time u = 0 ... */
  timestepFirst: number;
  /** ... and at u = 0.999 (Euler) or u = 1 (Dopri5). */
  timestepLast: number;
  /** x <- alpha * upsample(x) + beta * blockNoise, for every stage but the first. */
  renoise: { alpha: number; beta: number } | null;
}

function rescale(s: number, gamma: number): number {
  return 1 / (Math.sqrt(1 - 1 / gamma) * (1 - s) + s);
}

function sum(values: readonly number[]): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

export function computeStages(
  numStages: number,
  numTrainTimesteps: number,
  resolution: number,
  gamma: number = DEFAULT_GAMMA,
): Stage[] {
  const starts: number[] = [];
  const ends: number[] = [];
  for (let k = 0; k < numStages; k++) {
    const s = k / numStages;
    starts.push(k === 0 ? 0 : s * rescale(s, gamma));
    ends.push((k + 1) / numStages);
  }
  const spans = starts.map((start, k) => (ends[k] as number) - start);
  const total = sum(spans);
  // Integer timesteps are handed out in proportion to each stage's share of the time line.
  const firsts = [0];
  for (let k = 0; k < numStages - 1; k++) firsts.push(Math.floor((numTrainTimesteps * sum(spans.slice(0, k + 1))) / total));
  return starts.map((startT, k) => {
    const first = firsts[k] as number;
    const next = firsts[k + 1];
    const last = next === undefined ? numTrainTimesteps - 1 : first + STAGE_GRID_END * (next - first);
    let renoise: Stage['renoise'] = null;
    if (k > 0) {
      const s = k / numStages;
      const alpha = rescale(s, gamma);
      renoise = { alpha, beta: (alpha * (1 - s)) / Math.sqrt(-gamma) };
    }
    return {
      index: k,
      resolution: resolution / 2 ** (numStages - 1 - k),
      startT,
      endT: ends[k] as number,
      timestepFirst: first,
      timestepLast: last,
      renoise,
    };
  });
}

/**
 * How much of (cfg - 1) each stage applies. The released 4-stage model uses (0, 1/6, 2/3, 1); for
 * other stage counts the reference is silent and we ramp linearly from 0 to 1 (as pytorch/ does).
 */
export function cfgStageWeights(numStages: number): number[] {
  if (numStages === 4) return [0, 1 / 6, 2 / 3, 1];
  if (numStages === 1) return [1];
  return Array.from({ length: numStages }, (_, k) => k / (numStages - 1));
}

/** Stage-local times u_0..u_n of the reference Euler sampler, noise shift applied, ending at 1. */
export function eulerGrid(steps: number, shift: number): number[] {
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`steps must be an integer >= 1, got ${steps}`);
  const grid: number[] = [];
  for (let i = 0; i < steps; i++) {
    const u = steps === 1 ? 0 : (STAGE_GRID_END * i) / (steps - 1);
    grid.push(u / (shift + (1 - shift) * u));
  }
  grid.push(1);
  return grid;
}

/** Model timestep for Euler's stage-local time u (u = 0.999 lands on the stage's last timestep). */
export function eulerTimestep(stage: Stage, u: number): number {
  return stage.timestepFirst + (u / STAGE_GRID_END) * (stage.timestepLast - stage.timestepFirst);
}

/** Under Dopri5 the reference maps u in [0, 1] linearly onto [first, last] timestep, no shift. */
export function dopri5Timestep(stage: Stage, u: number): number {
  return stage.timestepFirst + u * (stage.timestepLast - stage.timestepFirst);
}

export class ScheduleMismatchError extends Error {
  override name = 'ScheduleMismatchError';
}

const TOLERANCE = 1e-9;

function close(a: number, b: number): boolean {
  return Math.abs(a - b) <= TOLERANCE * Math.max(1, Math.abs(a), Math.abs(b));
}

/**
 * The schedule of a converted model. pixelflow.json records the stages its converter computed; we
 * recompute them here and refuse a file that disagrees, rather than sample with numbers we cannot
 * account for.
 */
export function scheduleFor(manifest: ModelManifest): Stage[] {
  const { scheduler } = manifest;
  const stages = computeStages(scheduler.num_stages, scheduler.num_train_timesteps, manifest.resolution, scheduler.gamma);
  const weights = cfgStageWeights(scheduler.num_stages);
  stages.forEach((stage, k) => {
    const recorded = manifest.stages[k];
    const pairs: [string, number, number | undefined][] = [
      ['resolution', stage.resolution, recorded?.resolution],
      ['start_t', stage.startT, recorded?.start_t],
      ['end_t', stage.endT, recorded?.end_t],
      ['timestep_first', stage.timestepFirst, recorded?.timestep_first],
      ['timestep_last', stage.timestepLast, recorded?.timestep_last],
      ['renoise.alpha', stage.renoise?.alpha ?? 0, recorded?.renoise?.alpha ?? 0],
      ['renoise.beta', stage.renoise?.beta ?? 0, recorded?.renoise?.beta ?? 0],
    ];
    for (const [field, computed, value] of pairs) {
      if (value === undefined || !close(computed, value)) {
        throw new ScheduleMismatchError(
          `stages[${k}].${field} is ${value}, but the scheduler computes ${computed}`,
        );
      }
    }
    if (!close(weights[k] as number, scheduler.cfg_stage_weights[k] ?? Number.NaN)) {
      throw new ScheduleMismatchError(
        `scheduler.cfg_stage_weights[${k}] is ${scheduler.cfg_stage_weights[k]}, expected ${weights[k]}`,
      );
    }
  });
  return stages;
}
