import { cp, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModelDir, type ModelDir } from '@pixelflow/formats';
import type { Shape4 } from '@pixelflow/sampler';
import { OnnxModel } from '../src/onnx-model.ts';
import { sessionCacheKey } from '../src/session-cache.ts';

// The saved prepacked CPU session (session-cache.ts) against the real onnxruntime-node: it is
// saved once, loaded after, computes exactly what a session made from the model computes, follows
// a changed model, and when it cannot be used the model still loads and says why.

const TINY = fileURLToPath(new URL('../../../test/fixtures/tiny/', import.meta.url));
const SHAPE: Shape4 = [3, 3, 16, 16];
const x = Float32Array.from({ length: SHAPE.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 0.37));
const timestep = Float32Array.from([10, 500, 990]);
const labels = BigInt64Array.from([0n, 4n, 10n]);

let dir: string;
let model: ModelDir;
let uncached: Float32Array;

async function predictWith(cacheDir: string | undefined, source: ModelDir = model): Promise<{ velocity: Float32Array; loaded: OnnxModel }> {
  const loaded = await OnnxModel.load(source, cacheDir === undefined ? {} : { sessionCacheDir: cacheDir });
  try {
    return { velocity: await loaded.predict(x, SHAPE, timestep, labels), loaded };
  } finally {
    await loaded.dispose();
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pixelflow-session-cache-'));
  await cp(TINY, join(dir, 'tiny'), { recursive: true });
  model = await loadModelDir(join(dir, 'tiny'));
  const plain = await predictWith(undefined);
  expect(plain.loaded.sessionCache).toBe('off');
  uncached = plain.velocity;
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the session cache', () => {
  it('saves the session on the first load and maps it on the next, computing bit for bit the same', async () => {
    const cache = join(dir, 'cache');
    const first = await predictWith(cache);
    expect(first.loaded.sessionCache).toBe('saved');
    const key = sessionCacheKey(model, 'all');
    expect(await readdir(cache)).toEqual([key]);
    expect((await readdir(join(cache, key))).sort()).toEqual(['model.onnx', 'model.onnx.data']);
    const second = await predictWith(cache);
    expect(second.loaded.sessionCache).toBe('loaded');
    expect(second.loaded.sessionCacheProblem).toBeNull();
    expect(Buffer.from(first.velocity.buffer).equals(Buffer.from(uncached.buffer))).toBe(true);
    expect(Buffer.from(second.velocity.buffer).equals(Buffer.from(uncached.buffer))).toBe(true);
  });

  it('makes a new entry when the model files change, never serving the old graph', async () => {
    const cache = join(dir, 'changing');
    await predictWith(cache);
    const before = sessionCacheKey(model, 'all');
    const later = new Date(Date.now() + 60_000);
    await utimes(model.modelPath, later, later);
    const changed = await loadModelDir(join(dir, 'tiny'));
    expect(sessionCacheKey(changed, 'all')).not.toBe(before);
    const again = await predictWith(cache, changed);
    expect(again.loaded.sessionCache).toBe('saved');
    expect(await readdir(cache)).toHaveLength(2);
    // Another optimisation level is another graph, so another entry too.
    expect(sessionCacheKey(changed, 'basic')).not.toBe(sessionCacheKey(changed, 'all'));
  });

  it('loads the model itself, and says why, when the saved session is damaged', async () => {
    const cache = join(dir, 'damaged');
    await predictWith(cache);
    const [entry] = await readdir(cache);
    await writeFile(join(cache, entry as string, 'model.onnx'), 'not a model');
    const { velocity, loaded } = await predictWith(cache);
    expect(loaded.sessionCache).toBe('unusable');
    expect(loaded.sessionCacheProblem).toMatch(/^the saved session .* did not load/);
    expect(Buffer.from(velocity.buffer).equals(Buffer.from(uncached.buffer))).toBe(true);
  });

  it('loads the model itself, and says why, when the cache folder cannot be written', async () => {
    const blocked = join(dir, 'a-file');
    await writeFile(blocked, 'in the way');
    const { velocity, loaded } = await predictWith(join(blocked, 'cache'));
    expect(loaded.sessionCache).toBe('unusable');
    expect(loaded.sessionCacheProblem).toMatch(/^could not save the session under /);
    expect(Buffer.from(velocity.buffer).equals(Buffer.from(uncached.buffer))).toBe(true);
  });
});
