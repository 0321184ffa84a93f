import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadModelDir } from '../../formats/src/model-dir.ts';
import type { ModelManifest } from '@pixelflow/schemas';
import type { Shape4, VelocityModel } from '../src/model.ts';
import { drawRequestNoise, NoiseShapeError } from '../src/noise-set.ts';
import { sample, SamplingError, type SampleOptions, type StepProgress } from '../src/sample.ts';

// The sampler's control flow on models whose answers are known; its numbers against the PyTorch
// reference are tested on the real ONNX fixture in test/sampler-golden.test.ts.

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/tiny/', import.meta.url));
let manifest: ModelManifest;
beforeAll(async () => {
  manifest = (await loadModelDir(FIXTURE)).manifest;
});

/** v = 0.1 * label (the null label gives 1.0), counting calls and recording their batches. */
class RecordingModel implements VelocityModel {
  calls: { shape: Shape4; timestep: number; labels: number[] }[] = [];
  beforeReturn: (() => void) | undefined;

  async predict(x: Float32Array, shape: Shape4, timestep: Float32Array, labels: BigInt64Array): Promise<Float32Array> {
    this.calls.push({ shape, timestep: timestep[0] as number, labels: Array.from(labels, Number) });
    const perImage = x.length / shape[0];
    const v = new Float32Array(x.length);
    labels.forEach((label, b) => v.fill(Number(label) === 10 ? 1 : 0.1 * Number(label), b * perImage, (b + 1) * perImage));
    this.beforeReturn?.();
    return v;
  }
}

function options(model: VelocityModel, overrides: Partial<SampleOptions> = {}): SampleOptions {
  return { model, manifest, classLabels: [2, 5], solver: 'euler', cfgScale: 1, noiseShift: 1, steps: [2, 3, 1, 2], seed: 7, ...overrides };
}

describe('sample', () => {
  it('makes one model call per Euler step and reports progress after each', async () => {
    const model = new RecordingModel();
    const progress: StepProgress[] = [];
    const stages: { stage: number; resolution: number; state: number; preview: number }[] = [];
    const result = await sample(
      options(model, {
        onStep: (p) => progress.push(p),
        onStage: (s) => stages.push({ stage: s.stage, resolution: s.resolution, state: s.state.length, preview: s.preview.length }),
      }),
    );
    expect(result.modelCalls).toBe(8);
    expect(model.calls).toHaveLength(8);
    expect(progress.map((p) => p.stepsDone)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(progress.map((p) => [p.stage, p.stepInStage, p.stageSteps])).toEqual([
      [0, 1, 2], [0, 2, 2], [1, 1, 3], [1, 2, 3], [1, 3, 3], [2, 1, 1], [3, 1, 2], [3, 2, 2],
    ]);
    expect(progress.every((p) => p.stepsTotal === 8 && p.stages === 4)).toBe(true);
    expect(progress.map((p) => p.elapsedMs)).toEqual([...progress.map((p) => p.elapsedMs)].sort((a, b) => a - b));
    expect(stages).toEqual([4, 8, 16, 32].map((r, stage) => ({ stage, resolution: r, state: 2 * 3 * r * r, preview: 2 * r * r * 3 })));
    expect(result.images).toHaveLength(2 * 32 * 32 * 3);
    expect([result.width, result.height]).toEqual([32, 32]);
  });

  it('moves each image by its velocity and re-noises between stages', async () => {
    const zeroNoise = drawRequestNoise(manifest, 0, 2);
    for (const t of [zeroNoise.stage0, ...zeroNoise.blocks]) t.fill(0);
    const result = await sample(options(new RecordingModel(), { noise: zeroNoise }));
    // velocity 0.1 * label over u in [0, 1] per stage, then x <- alpha x at the next stage
    let expected = 0;
    manifest.stages.forEach((stage) => (expected = (stage.renoise?.alpha ?? 1) * expected + 0.5));
    const image1 = result.stageEnds[3]!.subarray(3 * 32 * 32);
    expect(Math.abs(image1[0]! - expected)).toBeLessThan(1e-6);
    expect(Math.abs(image1[3 * 32 * 32 - 1]! - expected)).toBeLessThan(1e-6);
  });

  it('runs guidance in one call of 2B with the null half first, and skips it where the scale is 1', async () => {
    const model = new RecordingModel();
    const result = await sample(options(model, { cfgScale: 3, steps: [1, 1, 1, 1] }));
    // stage 0 has weight 0 (scale 1): batch B; later stages: batch 2B = [null, null, 2, 5]
    expect(model.calls.map((c) => c.shape[0])).toEqual([2, 4, 4, 4]);
    expect(model.calls[1]!.labels).toEqual([10, 10, 2, 5]);
    expect(model.calls[0]!.labels).toEqual([2, 5]);
    // Everything is linear, so against an unguided run with the same noise the state differs by the
    // guided minus unguided velocity, v_null + g_k (v_2 - v_null) - v_2 with g_k = 1 + 2 w_k, carried
    // through the later stages' alpha.
    const unguided = await sample(options(new RecordingModel(), { cfgScale: 1, steps: [1, 1, 1, 1] }));
    let expected = 0;
    manifest.stages.forEach((stage, k) => {
      const g = 1 + 2 * manifest.scheduler.cfg_stage_weights[k]!;
      expected = (stage.renoise?.alpha ?? 1) * expected + (1 + g * (0.2 - 1) - 0.2);
    });
    const difference = result.stageEnds[3]![0]! - unguided.stageEnds[3]![0]!;
    expect(Math.abs(difference - expected)).toBeLessThan(1e-5);
  });

  it('captures the noise it drew, and the same noise supplied reproduces the images', async () => {
    const first = await sample(options(new RecordingModel()));
    const drawn = drawRequestNoise(manifest, 7, 2);
    expect(first.noise.stage0).toEqual(drawn.stage0);
    const replay = await sample(options(new RecordingModel(), { seed: 999, noise: first.noise }));
    expect(replay.images).toEqual(first.images);
    const other = await sample(options(new RecordingModel(), { seed: 8 }));
    expect(other.images).not.toEqual(first.images);
  });

  it('stops within one model call when aborted, before any call when aborted already', async () => {
    const model = new RecordingModel();
    const controller = new AbortController();
    const run = sample(
      options(model, { signal: controller.signal, onStep: (p) => p.stepsDone === 3 && controller.abort(new Error('stop')) }),
    );
    await expect(run).rejects.toThrow('stop');
    expect(model.calls).toHaveLength(3);

    // aborted while a call is in flight: that call finishes, no further call starts
    const slow = new RecordingModel();
    const inFlight = new AbortController();
    slow.beforeReturn = () => slow.calls.length === 2 && inFlight.abort();
    await expect(sample(options(slow, { signal: inFlight.signal }))).rejects.toMatchObject({ name: 'AbortError' });
    expect(slow.calls).toHaveLength(2);

    const idle = new RecordingModel();
    await expect(sample(options(idle, { signal: AbortSignal.abort() }))).rejects.toMatchObject({ name: 'AbortError' });
    expect(idle.calls).toHaveLength(0);
  });

  it('refuses bad parameters before any model call', async () => {
    const model = new RecordingModel();
    await expect(sample(options(model, { steps: [1, 2, 3] }))).rejects.toThrow(new SamplingError('steps has 3 entries for 4 stages'));
    await expect(sample(options(model, { classLabels: [10] }))).rejects.toThrow(/class label 10 is out of range 0..9/);
    await expect(sample(options(model, { cfgScale: 0.5 }))).rejects.toThrow(SamplingError);
    await expect(sample(options(model, { seed: -1 }))).rejects.toThrow(/seed must be a uint32/);
    const noise = drawRequestNoise(manifest, 1, 3);
    await expect(sample(options(model, { noise }))).rejects.toThrow(NoiseShapeError);
    expect(model.calls).toHaveLength(0);
  });

  it('reports Dopri5 progress without a total and integrates a constant field exactly', async () => {
    const model = new RecordingModel();
    const progress: StepProgress[] = [];
    const zeroNoise = drawRequestNoise(manifest, 0, 2);
    for (const t of [zeroNoise.stage0, ...zeroNoise.blocks]) t.fill(0);
    const result = await sample(options(model, { solver: 'dopri5', noise: zeroNoise, onStep: (p) => progress.push(p) }));
    expect(progress.every((p) => p.stepsTotal === null && p.stageSteps === null)).toBe(true);
    expect(result.modelCalls).toBe(model.calls.length);
    let expected = 0;
    manifest.stages.forEach((stage) => (expected = (stage.renoise?.alpha ?? 1) * expected + 0.2));
    expect(Math.abs(result.stageEnds[3]![0]! - expected)).toBeLessThan(1e-5);
  });
});
