import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalResultStore, ResultKeyError, resultKey, type ResultStore } from '../src/index.ts';

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

  it('opens an object as a stream with its size and a validator that changes with a new file', async () => {
    const store = new LocalResultStore(root);
    const key = resultKey('job2', 'image-0.png');
    await store.put(key, Buffer.from('some bytes'));
    const opened = await store.open(key);
    expect(opened?.size).toBe(10);
    const chunks: Buffer[] = [];
    for await (const chunk of opened!.body) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('some bytes');
    const stat = await store.stat(key);
    expect(stat).toEqual({ size: 10, etag: opened!.etag });
    expect(stat?.etag).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/);
    await store.put(key, Buffer.from('other bytes'));
    expect((await store.stat(key))?.etag).not.toBe(stat?.etag);
    expect(await store.open(resultKey('job2', 'image-1.png'))).toBeNull();
    expect(await store.stat(resultKey('nojob', 'image-1.png'))).toBeNull();
    expect((store as ResultStore).presignedUrl).toBeUndefined();
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
