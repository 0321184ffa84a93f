import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalResultStore, ResultKeyError, resultKey } from '../src/index.ts';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'pixelflow-results-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('LocalResultStore', () => {
  it('stores, replaces, reads and deletes a job’s objects, leaving no partial files', async () => {
    const store = new LocalResultStore(root);
    const key = resultKey('job1', 'image-0.png');
    await store.put(key, Buffer.from('first'));
    await store.put(key, Buffer.from('second'));
    await store.put(resultKey('job1', 'stage-0.png'), Buffer.from('preview'));
    expect((await store.get(key))?.toString()).toBe('second');
    expect((await readdir(join(root, 'job1'))).sort()).toEqual(['image-0.png', 'stage-0.png']);
    expect(await store.get(resultKey('job1', 'image-9.png'))).toBeNull();
    await store.deleteJob('job1');
    expect(await store.get(key)).toBeNull();
  });

  it('refuses keys that could leave its folder', async () => {
    const store = new LocalResultStore(root);
    for (const bad of ['../x/y.png', 'job/../../y.png', '/etc/passwd', 'job/a/b.png', 'job']) {
      await expect(store.get(bad)).rejects.toBeInstanceOf(ResultKeyError);
    }
    expect(() => resultKey('..', 'a.png')).toThrow(ResultKeyError);
    expect(() => resultKey('job', '.hidden')).toThrow(ResultKeyError);
  });
});
