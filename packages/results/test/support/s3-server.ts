import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

// A real S3-protocol server (the npm package s3rver) in a process of its own, over HTTP on a free
// port of 127.0.0.1, for tests of the S3 result store and of services configured for it. It is
// never run in-process: the point is that the store, the API and the worker talk to it the way
// they talk to S3 or MinIO, and that a test can take it down (kill) and bring it back (restart).

/** s3rver's one built-in key pair: requests signed with anything else are refused. */
export const S3RVER_ACCESS_KEY_ID = 'S3RVER';
export const S3RVER_SECRET_ACCESS_KEY = 'S3RVER';

export interface S3ServerOptions {
  /** The bucket created at start (default `pixelflow-test`); `null` creates none. */
  bucket?: string | null;
  /** S3_PREFIX put in `env` (default: none). */
  prefix?: string;
}

export interface S3Server {
  /** `http://127.0.0.1:<port>`: path-style only (no virtual-host buckets on 127.0.0.1). */
  readonly endpoint: string;
  readonly port: number;
  readonly bucket: string;
  /**
   * RESULTS_STORE=s3, S3_* and AWS_* for a service process (or a store) to use this server,
   * spread over a process's own environment.
   */
  readonly env: Record<string, string>;
  /** SIGKILL, keeping the data: the endpoint refuses connections until restart(). */
  kill(): Promise<void>;
  /** Starts it again on the same port with the same data (kills it first if it runs). */
  restart(): Promise<void>;
  /** SIGSTOP: connections open but nothing answers (a hung or partitioned S3). */
  freeze(): void;
  /** SIGCONT after freeze(). */
  thaw(): void;
  /** Kills it and deletes its data. Idempotent. */
  stop(): Promise<void>;
}

const s3rverBin = join(dirname(createRequire(import.meta.url).resolve('s3rver/package.json')), 'bin', 's3rver.js');

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no free port');
  return address.port;
}

/** Whether anything answers HTTP at `endpoint` now. */
async function answers(endpoint: string): Promise<boolean> {
  try {
    const response = await fetch(endpoint, { signal: AbortSignal.timeout(1_000) });
    await response.body?.cancel();
    return true;
  } catch {
    return false;
  }
}

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
}

async function launch(directory: string, port: number, bucket: string | null): Promise<Running> {
  // s3rver's ListObjectsV2 continuation tokens use DES, which OpenSSL 3 (Node 17+) only offers
  // through its legacy provider: without it, every listing past one page fails with InternalError.
  const args = ['--openssl-legacy-provider', s3rverBin, '--directory', directory, '--address', '127.0.0.1', '--port', String(port), '--silent', '--no-vhost-buckets'];
  if (bucket !== null) args.push('--configure-bucket', bucket);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const endpoint = `http://127.0.0.1:${port}`;
  // Generous: a cold node start on a busy 2-core machine can take seconds.
  const deadline = Date.now() + 20_000;
  while (!(await answers(endpoint))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`s3rver did not start on port ${port}: ${stderr.trim() || 'no output'}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { child, exited };
}

async function killRunning(running: Running | null): Promise<void> {
  if (running === null) return;
  const { child } = running;
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  }
  await running.exited;
}

/** Starts s3rver on a free port with a bucket; resolves once it answers HTTP. */
export async function startS3Server(options: S3ServerOptions = {}): Promise<S3Server> {
  const bucket = options.bucket === undefined ? 'pixelflow-test' : options.bucket;
  const directory = await mkdtemp(join(tmpdir(), 'pixelflow-test-s3-'));
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  let running: Running | null = await launch(directory, port, bucket);
  let stopped = false;
  const env: Record<string, string> = {
    RESULTS_STORE: 's3',
    S3_ENDPOINT: endpoint,
    S3_REGION: 'us-east-1',
    S3_BUCKET: bucket ?? 'pixelflow-test',
    S3_FORCE_PATH_STYLE: 'true',
    AWS_ACCESS_KEY_ID: S3RVER_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: S3RVER_SECRET_ACCESS_KEY,
  };
  if (options.prefix !== undefined) env.S3_PREFIX = options.prefix;

  return {
    endpoint,
    port,
    bucket: bucket ?? 'pixelflow-test',
    env,
    async kill() {
      await killRunning(running);
      running = null;
    },
    async restart() {
      if (stopped) throw new Error('s3rver was stopped; start a new one');
      await killRunning(running);
      running = null;
      // The bucket's folder is still there from the first start; configuring it again is harmless.
      running = await launch(directory, port, bucket);
    },
    freeze: () => void running?.child.kill('SIGSTOP'),
    thaw: () => void running?.child.kill('SIGCONT'),
    async stop() {
      stopped = true;
      await killRunning(running);
      running = null;
      await rm(directory, { recursive: true, force: true });
    },
  };
}
