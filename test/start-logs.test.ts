import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../packages/queue/test/support/redis-server.ts';
import { REPO } from '../scripts/compiled.mjs';
import { readableLogs, wantsReadableLogs } from '../scripts/service-logs.ts';

// `pnpm start`'s logs: readable lines for a person at a terminal, the services' JSON lines as they
// are anywhere else. The stream on its own, then scripts/start.ts itself in a pseudo-terminal
// (util-linux `script`) and through a pipe, on the real Redis under a key prefix of its own.

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const prefixes: string[] = [];
const folders: string[] = [];

afterAll(async () => {
  const redis = new Redis(REDIS_URL);
  for (const prefix of prefixes) {
    const stale = await redis.keys(`${prefix}:*`);
    if (stale.length > 0) await redis.del(...stale);
  }
  redis.disconnect();
  for (const folder of folders) await rm(folder, { recursive: true, force: true });
});

/** scripts/start.ts until it says it is ready, then Ctrl-C; everything it printed. */
async function startOutput(inTerminal: boolean): Promise<string> {
  const prefix = `pftest-${randomBytes(4).toString('hex')}`;
  prefixes.push(prefix);
  const results = await mkdtemp(join(tmpdir(), 'pixelflow-start-logs-'));
  folders.push(results);
  const env = {
    ...process.env,
    REDIS_URL,
    REDIS_PREFIX: prefix,
    RESULTS_DIR: results,
    MODEL_DIR: join(REPO, 'test/fixtures/tiny'),
    PORT: String(await freePort()),
    WORKER_METRICS_PORT: '0',
    WARMUP: 'false',
    LOG_LEVEL: 'info',
  };
  const command = `exec ${process.execPath} --import tsx scripts/start.ts`;
  const child = inTerminal
    ? spawn('script', ['-qfec', command, '/dev/null'], { cwd: REPO, env, stdio: ['pipe', 'pipe', 'pipe'] })
    : spawn('sh', ['-c', command], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready after 60 s:\n${output}`)), 60_000);
    const listen = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes('ready: open')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', listen);
    child.stderr?.on('data', listen);
  });
  try {
    await ready;
    await new Promise((resolve) => setTimeout(resolve, 300)); // the lines of the ready request
  } finally {
    if (inTerminal) child.stdin?.write('\x03'); // Ctrl-C, as the terminal sends it
    else child.kill('SIGINT');
    await new Promise((resolve) => child.once('exit', resolve));
  }
  return output;
}

describe('the readable log stream', () => {
  it('turns a service JSON line into time, level, [service] and message, and passes other lines as they are', async () => {
    let text = '';
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        text += chunk.toString();
        done();
      },
    });
    const stream = readableLogs(sink);
    stream.write(`${JSON.stringify({ level: 50, time: Date.UTC(2026, 10, 29, 5, 30, 0, 123), service: 'worker', pid: 7, hostname: 'box', job_id: 'j1', msg: 'job failed' })}\n`);
    stream.write('a line that is not JSON\n');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const [first, second] = text.split('\n');
    expect(first).toMatch(/^\[\d\d:\d\d:\d\d\.123\] ERROR: \[worker\] job failed \{"job_id":"j1"\}$/);
    expect(second).toBe('a line that is not JSON');
  });

  it('is chosen for a terminal only', () => {
    expect(wantsReadableLogs({ isTTY: true })).toBe(true);
    expect(wantsReadableLogs({ isTTY: false })).toBe(false);
    expect(wantsReadableLogs({})).toBe(false);
  });
});

describe('pnpm start (scripts/start.ts)', () => {
  it('prints readable lines in a terminal', async () => {
    const output = await startOutput(true);
    expect(output).toMatch(/INFO.*\[api\] Server listening at http:\/\/127\.0\.0\.1:\d+/);
    expect(output).toMatch(/INFO.*\[worker\] worker ready/);
    expect(output).not.toMatch(/"level":30/);
  }, 90_000);

  it('prints the services JSON lines through a pipe', async () => {
    const output = await startOutput(false);
    const json = output.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { service: string; msg: string });
    expect(json.some((line) => line.service === 'api' && line.msg.startsWith('Server listening'))).toBe(true);
    expect(json.some((line) => line.service === 'worker' && line.msg === 'worker ready')).toBe(true);
  }, 90_000);
});
