import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModelDir } from '@pixelflow/formats';
import { InferenceSession } from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forwardCases, maxAbsDiff, runForwardCase, TINY_CHECKPOINT_DIR } from './support/forward-golden.ts';

// `pnpm pixelflow convert` end to end: our TypeScript CLI, the real Python converter, and the
// converted file on onnxruntime-node, checked against the PyTorch golden vectors.

const REPO = fileURLToPath(new URL('..', import.meta.url));

function pixelflow(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('pnpm', ['--silent', 'pixelflow', ...args], { cwd: REPO }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

let out: string;
beforeAll(async () => {
  out = await mkdtemp(join(tmpdir(), 'pixelflow-convert-'));
});
afterAll(async () => {
  await rm(out, { recursive: true, force: true });
});

describe('pnpm pixelflow convert', () => {
  it.each([
    ['fp32', 'plain', 1e-4],
    // float16 products carry about 3 significant digits; outputs here are of order 1.
    ['fp16', 'plain', 5e-3],
    // onnxruntime's fused MultiHeadAttention (its CPU kernel here; flash attention on CUDA).
    ['fp32', 'multihead', 1e-4],
    ['fp16', 'multihead', 5e-3],
  ] as const)('converts the tiny checkpoint to %s with %s attention, matching PyTorch', async (dtype, attention, tolerance) => {
    const target = join(out, attention === 'plain' ? dtype : `${dtype}-${attention}`);
    const result = await pixelflow(['convert', TINY_CHECKPOINT_DIR, target, '--dtype', dtype, '--name', 'tiny', '--attention', attention]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/wrote .* \(59,852 parameters, (fp32|fp16)/);
    expect((await readdir(target)).sort()).toEqual(['model.onnx', 'pixelflow.json']);

    const model = await loadModelDir(target);
    expect(model.manifest.dtype).toBe(dtype);
    expect(model.manifest.name).toBe('tiny');
    expect(model.manifest.onnx.attention ?? 'plain').toBe(attention);
    const graph = await readFile(model.modelPath);
    expect(graph.includes('MultiHeadAttention')).toBe(attention === 'multihead');
    const session = await InferenceSession.create(model.modelPath, { executionProviders: ['cpu'] });
    try {
      for (const c of await forwardCases()) {
        const run = await runForwardCase(session, model, c);
        expect(run.output?.dims).toEqual(run.expected.shape);
        expect(maxAbsDiff(run.output?.data ?? [], run.expected.data).value, c.name).toBeLessThanOrEqual(tolerance);
      }
    } finally {
      await session.release();
    }
  });

  it('refuses a folder that is not a checkpoint with one line, exit 2, and writes nothing', async () => {
    const target = join(out, 'nothing');
    const result = await pixelflow(['convert', REPO, target]);
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^pixelflow convert: .* has no config\.yaml/)]);
    expect((await readdir(out)).filter((name) => name.startsWith('.') || name === 'nothing')).toEqual([]);
  });

  it('keeps an existing output folder unless --force is given', async () => {
    const target = join(out, 'fp32');
    const before = await readFile(join(target, 'pixelflow.json'), 'utf8');
    const refused = await pixelflow(['convert', TINY_CHECKPOINT_DIR, target]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/already exists and is not empty \(use --force/);
    expect(await readFile(join(target, 'pixelflow.json'), 'utf8')).toBe(before);
    const forced = await pixelflow(['convert', TINY_CHECKPOINT_DIR, target, '--force', '--name', 'tiny']);
    expect(forced.code).toBe(0);
    expect(JSON.parse(await readFile(join(target, 'pixelflow.json'), 'utf8'))).toEqual(JSON.parse(before));
  });
});
