import { loadModelDir, type ModelDir } from '@pixelflow/formats';
import { InferenceSession } from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forwardCases, maxAbsDiff, runForwardCase, TINY_MODEL_DIR } from './support/forward-golden.ts';

// The committed tiny model, exported by our Python converter, must compute on
// onnxruntime-node what the PyTorch network computed when the golden vectors
// were written (pytorch/pixelflow/golden.py). This is the bridge that lets the
// TypeScript sampler trust the ONNX file. Missing fixtures fail this file;
// they are never skipped.

/** fp32 ONNX vs fp32 PyTorch on CPU; kernels differ in summation order only. */
const TOLERANCE = 1e-4;

const cases = await forwardCases();

let model: ModelDir;
let session: InferenceSession;

beforeAll(async () => {
  model = await loadModelDir(TINY_MODEL_DIR);
  // One session for every case: sessions are expensive and leak when recreated.
  session = await InferenceSession.create(model.modelPath, { executionProviders: ['cpu'] });
});

afterAll(async () => {
  await session?.release();
});

describe('tiny ONNX fixture', () => {
  it('declares the inputs and outputs its manifest names', () => {
    const { inputs, outputs } = model.manifest.onnx;
    expect([...session.inputNames].sort()).toEqual([inputs.x, inputs.timestep, inputs.class_labels].sort());
    expect(session.outputNames).toContain(outputs.velocity);
  });

  it('has a manifest stage at the resolution of every golden forward case, batch 1 and 3 each', () => {
    const { stages } = model.manifest;
    for (const c of cases) {
      expect(stages[c.stage]?.resolution, `${c.name}: stage ${c.stage}`).toBe(c.height);
      expect(c.width, `${c.name}: square`).toBe(c.height);
    }
    expect(new Set(cases.map((c) => c.height))).toEqual(new Set(stages.map((s) => s.resolution)));
    for (const s of stages) {
      expect(new Set(cases.filter((c) => c.stage === s.index).map((c) => c.batch))).toEqual(new Set([1, 3]));
    }
  });

  it.each(cases.map((c) => [c.name, c] as const))('forward %s matches PyTorch', async (_name, c) => {
    const { architecture } = model.manifest;
    const run = await runForwardCase(session, model, c);
    expect(run.inputs.x).toEqual([c.batch, architecture.in_channels, c.height, c.width]);
    expect(run.inputs.timestep).toEqual([c.batch]);
    expect(run.inputs.classLabels).toEqual([c.batch]);
    expect(run.expected.shape).toEqual([c.batch, architecture.out_channels, c.height, c.width]);
    expect(run.output?.type).toBe('float32');
    expect(run.output?.dims).toEqual(run.expected.shape);
    // A model that outputs zeros would match all-zero goldens; these must carry signal.
    expect(maxAbsDiff(run.expected.data, new Float32Array(run.expected.data.length)).value).toBeGreaterThan(0);
    const worst = maxAbsDiff(run.output?.data ?? [], run.expected.data);
    expect(worst.value, `${c.name}: max |onnx - torch| at flat index ${worst.index}`).toBeLessThanOrEqual(TOLERANCE);
  });
});
