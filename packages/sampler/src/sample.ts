import type { ModelManifest } from '@pixelflow/schemas';
import { guidedVelocity } from './guidance.ts';
import { toRgbBytes, linearCombination, upsampleNearest2x } from './image-ops.ts';
import type { Shape4, VelocityModel } from './model.ts';
import { checkNoise, drawRequestNoise, type NoiseSet } from './noise-set.ts';
import { dopri5Timestep, eulerGrid, eulerTimestep, scheduleFor, type Stage } from './scheduler.ts';
import { dopri5Stage, eulerStage, SolverError, type VelocityField } from './solvers.ts';

// The cascaded PixelFlow sampler (PIXELFLOW.md sections 3-5): start from noise at the coarsest
// stage, integrate each stage's flow, upsample 2x and re-noise with block noise, until the full
// resolution. It knows nothing of HTTP or queues; the CLI and the worker drive it alike.

export type Solver = 'euler' | 'dopri5';

export interface StepProgress {
  /** 0-based stage of the model call that just finished. */
  stage: number;
  stages: number;
  /** 1-based model call within the stage. */
  stepInStage: number;
  /** Model calls this stage will make; null under Dopri5, which adapts its steps. */
  stageSteps: number | null;
  stepsDone: number;
  stepsTotal: number | null;
  elapsedMs: number;
}

export interface StageEnd {
  stage: number;
  resolution: number;
  /** Unclamped state at the end of the stage, float32 [B, C, r, r]. Owned by the callee. */
  state: Float32Array;
  /** The state as images, RGB bytes [B, r, r, 3]. */
  preview: Uint8Array;
}

export interface SampleOptions {
  model: VelocityModel;
  manifest: ModelManifest;
  /** One class label per image. */
  classLabels: readonly number[];
  solver: Solver;
  cfgScale: number;
  noiseShift: number;
  /** Euler steps per stage (ignored by Dopri5, like the reference). */
  steps: readonly number[];
  /** uint32; image i draws its noise from (seed + i) mod 2^32 unless `noise` is given. */
  seed: number;
  noise?: NoiseSet;
  signal?: AbortSignal;
  onStep?: (progress: StepProgress) => void;
  onStage?: (end: StageEnd) => void;
  /** Dopri5's tolerances; default the manifest's (rtol 1e-3, atol 1e-6 for the released model). */
  dopri5Tolerance?: { rtol: number; atol: number };
  /** Dopri5's cap on steps per stage (accepted and rejected); default 1000. */
  maxSolverSteps?: number;
}

export interface SampleResult {
  /** RGB bytes [B, H, W, 3]. */
  images: Uint8Array;
  width: number;
  height: number;
  noise: NoiseSet;
  stageEnds: Float32Array[];
  modelCalls: number;
  elapsedMs: number;
}

export class SamplingError extends Error {
  override name = 'SamplingError';
}

function checkOptions(options: SampleOptions, stages: readonly Stage[]): void {
  const { classLabels, steps, cfgScale, noiseShift, solver, seed, manifest } = options;
  const numClasses = manifest.architecture.num_classes;
  if (classLabels.length === 0) throw new SamplingError('at least one image is needed');
  for (const label of classLabels) {
    if (!Number.isInteger(label) || label < 0 || label >= numClasses) {
      throw new SamplingError(`class label ${label} is out of range 0..${numClasses - 1}`);
    }
  }
  if (steps.length !== stages.length) throw new SamplingError(`steps has ${steps.length} entries for ${stages.length} stages`);
  for (const n of steps) if (!Number.isInteger(n) || n < 1) throw new SamplingError(`steps must be integers >= 1, got ${n}`);
  if (!(cfgScale >= 1)) throw new SamplingError(`cfg scale must be >= 1, got ${cfgScale}`);
  if (!(noiseShift >= 1)) throw new SamplingError(`noise shift must be >= 1, got ${noiseShift}`);
  if (solver !== 'euler' && solver !== 'dopri5') throw new SamplingError(`unknown solver ${String(solver)}`);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new SamplingError(`seed must be a uint32, got ${seed}`);
}

export async function sample(options: SampleOptions): Promise<SampleResult> {
  const started = performance.now();
  const { model, manifest, solver, signal } = options;
  const stages = scheduleFor(manifest);
  checkOptions(options, stages);
  const batch = options.classLabels.length;
  const channels = manifest.architecture.in_channels;
  const noise = options.noise ?? drawRequestNoise(manifest, options.seed, batch);
  checkNoise(noise, manifest, batch);
  const classLabels = BigInt64Array.from(options.classLabels, (label) => BigInt(label));
  const weights = manifest.scheduler.cfg_stage_weights;
  const stepsTotal = solver === 'euler' ? options.steps.reduce((a, b) => a + b, 0) : null;
  let stepsDone = 0;

  signal?.throwIfAborted();
  let x: Float32Array = noise.stage0.slice();
  const stageEnds: Float32Array[] = [];
  for (const stage of stages) {
    const side = stage.resolution;
    const shape: Shape4 = [batch, channels, side, side];
    if (stage.renoise) {
      const half = side / 2;
      const upsampled = upsampleNearest2x(x, [batch, channels, half, half]);
      x = linearCombination(stage.renoise.alpha, upsampled, stage.renoise.beta, noise.blocks[stage.index - 1] as Float32Array);
    }
    const scale = 1 + (options.cfgScale - 1) * (weights[stage.index] as number);
    const stageSteps = solver === 'euler' ? (options.steps[stage.index] as number) : null;
    let stepInStage = 0;
    const timestepAt = solver === 'euler' ? eulerTimestep : dopri5Timestep;
    const velocity: VelocityField = async (u, state) => {
      signal?.throwIfAborted();
      const v = await guidedVelocity({
        model,
        x: state,
        shape,
        timestep: timestepAt(stage, u),
        classLabels,
        nullLabel: manifest.classes.null_label,
        scale,
      });
      stepsDone++;
      stepInStage++;
      options.onStep?.({
        stage: stage.index,
        stages: stages.length,
        stepInStage,
        stageSteps,
        stepsDone,
        stepsTotal,
        elapsedMs: performance.now() - started,
      });
      return v;
    };
    try {
      x =
        solver === 'euler'
          ? await eulerStage(velocity, x, eulerGrid(stageSteps as number, options.noiseShift))
          : await dopri5Stage(velocity, x, {
              ...(options.dopri5Tolerance ?? manifest.dopri5),
              maxSteps: options.maxSolverSteps ?? 1000,
            });
    } catch (error) {
      if (error instanceof SolverError) throw new SamplingError(`stage ${stage.index}: ${error.message}`, { cause: error });
      throw error;
    }
    stageEnds.push(x);
    options.onStage?.({ stage: stage.index, resolution: side, state: x.slice(), preview: toRgbBytes(x, shape) });
  }
  const side = manifest.resolution;
  return {
    images: toRgbBytes(x, [batch, channels, side, side]),
    width: side,
    height: side,
    noise,
    stageEnds,
    modelCalls: stepsDone,
    elapsedMs: performance.now() - started,
  };
}
