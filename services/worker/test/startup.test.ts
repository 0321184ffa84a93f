import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { cudaProviderNotInstalled, onnxruntimeLibDir } from '@pixelflow/onnx';
import { describe, expect, it } from 'vitest';

// A worker process whose start-up fails after it opened its Redis connections must still exit:
// anything left open (a connection, a timer) would keep a dead worker alive and invisible.

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';

/** A worker process on the tiny model with `extraEnv`; its output collected, its exit code awaited (null: killed after 25 s). */
function startWorker(extraEnv: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'services/worker/src/main.ts'], {
    cwd: REPO,
    env: {
      ...process.env,
      REDIS_URL,
      REDIS_PREFIX: `pftest-${randomBytes(4).toString('hex')}`,
      MODEL_DIR: `${REPO}test/fixtures/tiny`,
      RESULTS_DIR: tmpdir(),
      WORKER_METRICS_HOST: '127.0.0.1',
      WORKER_METRICS_PORT: '0',
      LOG_LEVEL: 'silent',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = { stdout: '', stderr: '' };
  child.stdout.on('data', (chunk: Buffer) => (output.stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output.stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(null);
    }, 25_000);
    child.once('exit', (exitCode) => {
      clearTimeout(timer);
      resolve(exitCode);
    });
  });
  return { child, output, exited };
}

describe('a worker that cannot start', () => {
  it('exits 1 when its metrics port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const { output, exited } = startWorker({ WORKER_METRICS_PORT: String(port) });
      const code = await exited;
      expect(output.stderr).toContain('EADDRINUSE');
      expect(code).toBe(1);
    } finally {
      blocker.close();
    }
  }, 30_000);
});

describe('a worker asked for CUDA', () => {
  const cuda = { ORT_PROVIDER: 'cuda', WARMUP: 'false' };
  const installed = cudaProviderNotInstalled() === null;

  // Dev machines and CI have no CUDA provider: `pixelflow cuda install` is opt-in.
  it.runIf(!installed)('exits 1 with one line naming what is missing, never falling back on its own', async () => {
    const { output, exited } = startWorker(cuda);
    expect(await exited).toBe(1);
    expect(output.stderr).toBe(
      `pixelflow worker: ${REPO}test/fixtures/tiny/model.onnx: provider 'cuda' unavailable: onnxruntime's CUDA execution ` +
        `provider is not installed: libonnxruntime_providers_shared.so and libonnxruntime_providers_cuda.so missing from ` +
        `${onnxruntimeLibDir()} (run \`pnpm pixelflow cuda install\`, see deploy/README.md)\n`,
    );
  }, 30_000);

  it('serves on the CPU when ORT_CPU_FALLBACK=true, saying why in a warning', async () => {
    const { child, output, exited } = startWorker({ ...cuda, LOG_LEVEL: 'warn', ORT_CPU_FALLBACK: 'true' });
    const deadline = Date.now() + 20_000;
    while (!output.stdout.includes('serving on the CPU') && Date.now() < deadline && child.exitCode === null) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const warning = output.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { level: number; msg: string; reason: string })
      .find((entry) => entry.msg.includes('serving on the CPU'));
    expect(warning?.level).toBe(40);
    expect(warning?.reason).toContain(installed ? 'CUDA' : "onnxruntime's CUDA execution provider is not installed");
  }, 30_000);
});
