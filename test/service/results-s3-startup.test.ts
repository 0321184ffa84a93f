import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../packages/queue/test/support/redis-server.ts';
import { startS3Server, type S3Server } from '../../packages/results/test/support/s3-server.ts';
import { REDIS_URL, REPO, TINY } from './support.ts';

// A misconfigured result store stops the API and the worker at start, each with one line that
// names the problem: the variables' own errors (exit 2, before anything opens), and what only the
// bucket can tell (exit 1: start-up's HeadBucket). Real processes, a real S3-protocol server.

let s3: S3Server;
beforeAll(async () => {
  s3 = await startS3Server();
});
afterAll(async () => {
  await s3?.stop();
});

const MAINS = { api: 'services/api/src/main.ts', worker: 'services/worker/src/main.ts' } as const;

/** Runs a service's main with `env`; its exit code (or 'running' past 30 s, then killed) and its stderr lines that are its own. */
async function start(service: keyof typeof MAINS, env: Record<string, string>): Promise<{ code: number | null | 'running'; lines: string[] }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, MAINS[service])], {
    cwd: REPO,
    env: {
      ...process.env,
      REDIS_URL,
      REDIS_PREFIX: `pftest-${randomBytes(4).toString('hex')}`,
      MODEL_DIR: TINY,
      RESULTS_DIR: tmpdir(),
      PORT: '0',
      WORKER_METRICS_HOST: '127.0.0.1',
      WORKER_METRICS_PORT: '0',
      LOG_LEVEL: 'silent',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null | 'running'>((resolve) => {
    // Generous: a cold tsx start on a loaded 2-core machine, plus the 5 s bucket check at most.
    const timer = setTimeout(() => resolve('running'), 30_000);
    child.once('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  if (code === 'running') child.kill('SIGKILL');
  // Node's own warnings (the AWS SDK warns on Node < 22) are not the service's lines.
  return { code, lines: stderr.split('\n').filter((line) => line.startsWith(`pixelflow ${service}:`)) };
}

describe.each(['api', 'worker'] as const)('the %s with a misconfigured result store', (service) => {
  it('refuses bad variables with one line naming each (exit 2)', { timeout: 60_000 }, async () => {
    const { code, lines } = await start(service, { RESULTS_STORE: 'gcs', S3_ENDPOINT: 'minio:9000', S3_BUCKET: 'Not_A_Bucket' });
    expect(code).toBe(2);
    expect(lines).toEqual([
      `pixelflow ${service}: invalid configuration: RESULTS_STORE must be local or s3 (got "gcs"); S3_ENDPOINT must be an http:// or https:// URL such as http://minio:9000 (got "minio:9000"); S3_BUCKET must be an S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit (got "Not_A_Bucket")`,
    ]);
    const missing = await start(service, { RESULTS_STORE: 's3' });
    expect(missing.code).toBe(2);
    expect(missing.lines).toEqual([`pixelflow ${service}: invalid configuration: S3_BUCKET is required when RESULTS_STORE=s3`]);
  });

  it('refuses a bucket that is not there, refused credentials and an endpoint nobody answers at (exit 1)', { timeout: 120_000 }, async () => {
    const noBucket = await start(service, { ...s3.env, S3_BUCKET: 'no-such-bucket' });
    expect(noBucket).toEqual({ code: 1, lines: [`pixelflow ${service}: result store: S3_BUCKET: no bucket "no-such-bucket" at ${s3.endpoint} (create it, or fix S3_BUCKET)`] });

    const refused = await start(service, { ...s3.env, AWS_ACCESS_KEY_ID: 'NOT-A-KEY', AWS_SECRET_ACCESS_KEY: 'wrong' });
    expect(refused.code).toBe(1);
    expect(refused.lines).toEqual([
      `pixelflow ${service}: result store: S3 refused the credentials for bucket "${s3.bucket}" at ${s3.endpoint} (HTTP 403): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's policy`,
    ]);

    const nobody = `http://127.0.0.1:${await freePort()}`;
    const unreachable = await start(service, { ...s3.env, S3_ENDPOINT: nobody });
    expect(unreachable.code).toBe(1);
    expect(unreachable.lines).toEqual([expect.stringMatching(new RegExp(`^pixelflow ${service}: result store: S3_ENDPOINT: ${nobody} is unreachable: .*ECONNREFUSED`))]);
  });
});

describe('a correctly configured S3 store', () => {
  it('lets the API start and answer', { timeout: 60_000 }, async () => {
    // The same start as above with nothing wrong: the API serves (then is stopped), proving the
    // refusals come from the store's configuration and not from the harness.
    const port = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, MAINS.api)], {
      cwd: REPO,
      env: { ...process.env, ...s3.env, REDIS_URL, REDIS_PREFIX: `pftest-${randomBytes(4).toString('hex')}`, MODEL_DIR: TINY, PORT: String(port), LOG_LEVEL: 'silent' },
      stdio: 'ignore',
    });
    try {
      await expect.poll(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.status, { timeout: 30_000, interval: 200 }).toBe(200);
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  });
});
