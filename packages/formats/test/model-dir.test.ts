import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exampleManifest } from '@pixelflow/schemas/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadModelDir, ModelDirError } from '../src/model-dir.ts';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'pixelflow-model-dir-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Writes a model folder; loadModelDir only checks that the ONNX file exists, so its bytes don't matter here. */
async function writeModelDir(manifest: unknown = exampleManifest(), files = ['model.onnx']): Promise<string> {
  const dir = join(root, 'model');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'pixelflow.json'), typeof manifest === 'string' ? manifest : JSON.stringify(manifest));
  for (const file of files) await writeFile(join(dir, file), 'onnx bytes');
  return dir;
}

/** Expects loadModelDir to fail with a one-line ModelDirError and returns its message. */
async function failure(dir: string): Promise<string> {
  const error: unknown = await loadModelDir(dir).then(
    () => expect.unreachable('loadModelDir should have failed'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ModelDirError);
  const { message } = error as Error;
  expect(message).not.toContain('\n');
  return message;
}

describe('loadModelDir', () => {
  it('refuses a pixelflow.json whose schedule the sampler cannot reproduce', async () => {
    const manifest = exampleManifest();
    manifest.stages[1]!.renoise = { alpha: 0.6, beta: 0.7 };
    const message = await failure(await writeModelDir(manifest));
    expect(message).toMatch(/pixelflow\.json: stages\[1\]\.renoise\.alpha is 0\.6, but the scheduler computes 0\.571428/);
  });

  it('loads a valid folder', async () => {
    const dir = await writeModelDir();
    const model = await loadModelDir(dir);
    expect(model.dir).toBe(dir);
    expect(model.manifest).toEqual(exampleManifest());
    expect(model.modelPath).toBe(join(dir, 'model.onnx'));
    expect(model.externalDataPath).toBeNull();
  });

  it('resolves a relative folder to an absolute one', async () => {
    const dir = await writeModelDir();
    const model = await loadModelDir(join(dir, '..', 'model'));
    expect(model.dir).toBe(dir);
  });

  it('finds external weights when the manifest names them', async () => {
    const dir = await writeModelDir({ ...exampleManifest(), external_data_file: 'model.onnx.data' }, [
      'model.onnx',
      'model.onnx.data',
    ]);
    expect((await loadModelDir(dir)).externalDataPath).toBe(join(dir, 'model.onnx.data'));
  });

  it('reports a missing folder', async () => {
    expect(await failure(join(root, 'nope'))).toBe(`model folder not found: ${join(root, 'nope')}`);
  });

  it('reports a file given as the folder', async () => {
    const dir = await writeModelDir();
    expect(await failure(join(dir, 'model.onnx'))).toBe(`model folder is not a folder: ${join(dir, 'model.onnx')}`);
  });

  it('reports a folder without pixelflow.json', async () => {
    await mkdir(join(root, 'empty'));
    expect(await failure(join(root, 'empty'))).toMatch(
      /pixelflow\.json not found: .*empty is not a converted PixelFlow model \(run pixelflow convert\)$/,
    );
  });

  it('reports invalid JSON with the file name', async () => {
    const dir = await writeModelDir('{"format": "pixelflow-onnx",');
    expect(await failure(dir)).toMatch(new RegExp(`^${join(dir, 'pixelflow.json')}: invalid JSON: `));
  });

  it('reports schema failures with the file name and field paths', async () => {
    const dir = await writeModelDir({ ...exampleManifest(), dtype: 'int8', resolution: 0 });
    const message = await failure(dir);
    expect(message).toMatch(new RegExp(`^${join(dir, 'pixelflow.json')}: invalid pixelflow\\.json: `));
    expect(message).toContain('dtype: ');
    expect(message).toContain('resolution: ');
  });

  it('reports a missing model file', async () => {
    const dir = await writeModelDir(exampleManifest(), []);
    expect(await failure(dir)).toBe(`model file of ${join(dir, 'pixelflow.json')} not found: ${join(dir, 'model.onnx')}`);
  });

  it('reports missing external weights', async () => {
    const dir = await writeModelDir({ ...exampleManifest(), external_data_file: 'model.onnx.data' });
    expect(await failure(dir)).toBe(
      `external weights of ${join(dir, 'pixelflow.json')} not found: ${join(dir, 'model.onnx.data')}`,
    );
  });

  it('reports a model file that is a folder', async () => {
    const dir = await writeModelDir(exampleManifest(), []);
    await mkdir(join(dir, 'model.onnx'));
    expect(await failure(dir)).toBe(`model file of ${join(dir, 'pixelflow.json')} is not a file: ${join(dir, 'model.onnx')}`);
  });

  it('reports a pixelflow.json it cannot read', async () => {
    // A folder in its place: unreadable even for root, unlike a chmod 000 file.
    await mkdir(join(root, 'model', 'pixelflow.json'), { recursive: true });
    expect(await failure(join(root, 'model'))).toMatch(/pixelflow\.json: cannot read: EISDIR/);
  });
});
