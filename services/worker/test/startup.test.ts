import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// A worker process whose start-up fails after it opened its Redis connections must still exit:
// anything left open (a connection, a timer) would keep a dead worker alive and invisible.

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';

describe('a worker that cannot start', () => {
  it('exits 1 when its metrics port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', 'services/worker/src/main.ts'], {
        cwd: REPO,
        env: {
          ...process.env,
          REDIS_URL,
          REDIS_PREFIX: `pftest-${randomBytes(4).toString('hex')}`,
          MODEL_DIR: `${REPO}test/fixtures/tiny`,
          RESULTS_DIR: tmpdir(),
          WORKER_METRICS_HOST: '127.0.0.1',
          WORKER_METRICS_PORT: String(port),
          LOG_LEVEL: 'silent',
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve(null);
        }, 15_000);
        child.once('exit', (exitCode) => {
          clearTimeout(timer);
          resolve(exitCode);
        });
      });
      expect(stderr).toContain('EADDRINUSE');
      expect(code).toBe(1);
    } finally {
      blocker.close();
    }
  }, 20_000);
});
