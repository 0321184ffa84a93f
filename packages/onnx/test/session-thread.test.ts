import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadModelDir } from '@pixelflow/formats';
import type { Shape4 } from '@pixelflow/sampler';
import { OnnxModel } from '../src/onnx-model.ts';
import { discardSpareSessionThread, startSessionThreadEarly } from '../src/session-thread.ts';

// A session thread started ahead of the load (what `pixelflow generate` does while it imports the
// rest), against the real onnxruntime-node: the next load takes it and computes exactly what a
// thread of its own computes; later loads start their own; an unused one is ended.

const TINY = fileURLToPath(new URL('../../../test/fixtures/tiny/', import.meta.url));
const SHAPE: Shape4 = [2, 3, 16, 16];
const x = Float32Array.from({ length: SHAPE.reduce((a, b) => a * b, 1) }, (_, i) => Math.cos(i * 0.29));
const timestep = Float32Array.from([100, 900]);
const labels = BigInt64Array.from([1n, 10n]);

describe('a session thread started ahead', () => {
  it('is taken by the next load, which computes bit for bit what a thread of its own computes', async () => {
    const model = await loadModelDir(TINY);
    const own = await OnnxModel.load(model);
    const expected = await own.predict(x, SHAPE, timestep, labels);
    await own.dispose();

    const ahead = startSessionThreadEarly();
    expect(startSessionThreadEarly()).toBe(ahead); // one at a time
    const taken = await OnnxModel.load(model);
    const next = await OnnxModel.load(model);
    try {
      expect(taken.threadId).toBe(ahead);
      expect(next.threadId).not.toBe(ahead);
      expect(await taken.predict(x, SHAPE, timestep, labels)).toEqual(expected);
      expect(await next.predict(x, SHAPE, timestep, labels)).toEqual(expected);
    } finally {
      await taken.dispose();
      await next.dispose();
    }
  });

  it('reports a model that does not load like a thread of its own would', async () => {
    const model = await loadModelDir(TINY);
    startSessionThreadEarly();
    const broken = { ...model, modelPath: `${model.modelPath}.missing` };
    await expect(OnnxModel.load(broken)).rejects.toThrow(/cannot create an onnxruntime session/);
  });

  it('is ended when no load takes it, and the next load starts a thread of its own', async () => {
    const ahead = startSessionThreadEarly();
    expect(await discardSpareSessionThread()).toBe(true);
    expect(await discardSpareSessionThread()).toBe(false);
    const loaded = await OnnxModel.load(await loadModelDir(TINY));
    try {
      expect(loaded.threadId).not.toBe(ahead);
      expect(await loaded.predict(x, SHAPE, timestep, labels)).toHaveLength(x.length);
    } finally {
      await loaded.dispose();
    }
  });
});
