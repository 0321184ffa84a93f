import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadModelDir, readNpyAs, type ModelDir } from '@pixelflow/formats';
import { OnnxModel } from '@pixelflow/onnx';
import { guidedVelocity, sample, type NoiseSet } from '@pixelflow/sampler';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { maxAbsDiff, TINY_MODEL_DIR } from './support/forward-golden.ts';

// The TypeScript sampler on onnxruntime-node against whole runs of the PyTorch reference sampler
// (pytorch/pixelflow/golden.py): the same noise in, the same stage ends and images out.

const RUNS_DIR = join(TINY_MODEL_DIR, 'golden', 'runs');
const Run = z.object({
  name: z.string(),
  solver: z.enum(['euler', 'dopri5']),
  cfg_scale: z.number(),
  noise_shift: z.number(),
  steps: z.array(z.int()),
  class_labels: z.array(z.int()),
  rtol: z.number(),
  atol: z.number(),
  model_calls: z.int(),
});
const runs = z.array(Run).min(1).parse(JSON.parse(await readFile(join(RUNS_DIR, 'index.json'), 'utf8')));
const TOLERANCE = { euler: 1e-4, dopri5: 1e-3 } as const;

let modelDir: ModelDir;
let model: OnnxModel;
beforeAll(async () => {
  modelDir = await loadModelDir(TINY_MODEL_DIR);
  model = await OnnxModel.load(modelDir);
});
afterAll(async () => {
  await model?.dispose();
});

async function loadNoise(run: string, stages: number): Promise<NoiseSet> {
  const tensor = async (name: string) => (await readNpyAs(join(RUNS_DIR, run, `${name}.npy`), '<f4')).data;
  const blocks: Float32Array[] = [];
  for (let k = 1; k < stages; k++) blocks.push(await tensor(`noise_block_${k}`));
  return { stage0: await tensor('noise_stage0'), blocks };
}

describe('the sampler reproduces the reference', () => {
  it('covers both solvers, CFG 1 and 4, shift 1 and 3, uneven steps', () => {
    expect(new Set(runs.map((r) => r.solver))).toEqual(new Set(['euler', 'dopri5']));
    expect(new Set(runs.map((r) => r.cfg_scale))).toEqual(new Set([1, 4]));
    expect(new Set(runs.map((r) => r.noise_shift))).toEqual(new Set([1, 3]));
    expect(runs.some((r) => new Set(r.steps).size > 1)).toBe(true);
  });

  it.each(runs.map((r) => [r.name, r] as const))('%s', async (name, run) => {
    const stages = modelDir.manifest.scheduler.num_stages;
    const result = await sample({
      model,
      manifest: modelDir.manifest,
      classLabels: run.class_labels,
      solver: run.solver,
      cfgScale: run.cfg_scale,
      noiseShift: run.noise_shift,
      steps: run.steps,
      seed: 0,
      noise: await loadNoise(name, stages),
      dopri5Tolerance: { rtol: run.rtol, atol: run.atol },
    });
    for (let k = 0; k < stages; k++) {
      const expected = await readNpyAs(join(RUNS_DIR, name, `stage_${k}.npy`), '<f4');
      const worst = maxAbsDiff(result.stageEnds[k]!, expected.data);
      expect(worst.value, `${name} stage ${k}`).toBeLessThanOrEqual(TOLERANCE[run.solver]);
    }
    const image = await readNpyAs(join(RUNS_DIR, name, 'image.npy'), '|u1');
    expect(image.shape).toEqual([run.class_labels.length, 32, 32, 3]);
    let off = 0;
    image.data.forEach((v, i) => (off = Math.max(off, Math.abs(v - result.images[i]!))));
    // Euler lands on the same bytes; Dopri5 may round a pixel on a .5 boundary the other way.
    expect(off).toBeLessThanOrEqual(run.solver === 'euler' ? 0 : 1);
    if (run.solver === 'euler') expect(result.modelCalls).toBe(run.model_calls);
  });
});

describe('classifier-free guidance at scale 1', () => {
  it('skipping the null half agrees with computing both halves within 1e-5', async () => {
    const { manifest } = modelDir;
    const x = (await readNpyAs(join(RUNS_DIR, runs[0]!.name, 'stage_2.npy'), '<f4')).data;
    const input = {
      model,
      x,
      shape: [2, 3, 16, 16] as const,
      timestep: 500,
      classLabels: BigInt64Array.of(3n, 7n),
      nullLabel: manifest.classes.null_label,
      scale: 1,
    };
    const skipped = await guidedVelocity(input);
    const both = await guidedVelocity({ ...input, alwaysBothHalves: true });
    expect(maxAbsDiff(skipped, both).value).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(skipped, new Float32Array(skipped.length)).value).toBeGreaterThan(0.1);
  });
});
