// bench/auth: what API keys cost per request. `pnpm bench:auth [--seconds N] [--rounds N]`.
//
// Two API processes on the local Redis under one key prefix of their own, one with AUTH=off and one
// with AUTH=on, serve GET /jobs/:id for the same job (made by a key, so that the AUTH=on request
// also takes the ownership check) under autocannon at a fixed concurrency, in alternating rounds
// (this machine's speed drifts over seconds; each pair sees about the same). With AUTH=on a request
// costs one HGETALL of the key's record (the authentication, no cache: a revocation holds at once)
// and one of the job's record (the ownership check). Prints each round and the median ratio.

import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import { DEFAULT_MODEL_DIR } from '@pixelflow/formats';
import { ApiKeys, hashApiKey, keys as makeKeys } from '@pixelflow/queue';
import { median } from './numbers.ts';
import { benchServiceEnv, prepareServices, startService, until } from './service-processes.ts';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '10' },
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    port: { type: 'string', default: '8197' },
  },
});
const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const connections = Number(values.connections);
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const prefix = `pfbench-${randomBytes(4).toString('hex')}`;
const results = await mkdtemp(join(tmpdir(), 'pixelflow-bench-auth-'));
const ports = { off: String(Number(values.port)), on: String(Number(values.port) + 1) };
const children: ChildProcess[] = [];
const redis = new Redis(REDIS_URL);

function envFor(auth: 'off' | 'on') {
  return { ...benchServiceEnv({ redisUrl: REDIS_URL, prefix, model: DEFAULT_MODEL_DIR, results, port: ports[auth], metricsPort: '0', ortThreads: '1' }), AUTH: auth };
}

interface Round {
  p50: number;
  p99: number;
  rps: number;
}

async function round(port: string, headers: Record<string, string>, path: string): Promise<Round> {
  const result = await autocannon({ url: `http://127.0.0.1:${port}${path}`, headers, connections, duration: seconds });
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${result.non2xx} non-2xx answers and ${result.errors} errors on port ${port}`);
  return { p50: result.latency.p50, p99: result.latency.p99, rps: result.requests.average };
}

/** One HGETALL of a key's record, as the hook makes it, from this process: Redis's own share. */
async function hgetallMicroseconds(key: string, times = 20_000): Promise<number> {
  const record = makeKeys(prefix).apiKey(hashApiKey(key));
  const started = performance.now();
  for (let i = 0; i < times; i++) await redis.hgetall(record);
  return ((performance.now() - started) * 1000) / times;
}

try {
  await prepareServices();
  children.push(startService('api', envFor('off')), startService('api', envFor('on')));
  for (const port of Object.values(ports)) await until(async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, `the API on ${port}`);
  const { key } = await new ApiKeys(redis, makeKeys(prefix)).create({ name: 'bench', admin: false, ratePerMinute: null, maxActive: null });
  const bearer = { authorization: `Bearer ${key}` };
  const created = await fetch(`http://127.0.0.1:${ports.on}/jobs`, { method: 'POST', headers: { ...bearer, 'content-type': 'application/json' }, body: JSON.stringify({ class: 1, steps: 1 }) });
  const { id } = (await created.json()) as { id: string };
  const path = `/jobs/${id}`;
  await round(ports.off, {}, path); // warm-up: JIT and connections
  await round(ports.on, bearer, path);
  const ratios: number[] = [];
  const extraMs: number[] = [];
  console.log(`GET /jobs/:id, ${connections} connections, ${seconds} s a round`);
  console.log('round | AUTH=off p50/p99 ms  req/s | AUTH=on p50/p99 ms  req/s | on/off req/s');
  for (let i = 1; i <= rounds; i++) {
    const off = await round(ports.off, {}, path);
    const on = await round(ports.on, bearer, path);
    ratios.push(on.rps / off.rps);
    extraMs.push((connections * 1000) / on.rps - (connections * 1000) / off.rps);
    console.log(`${i} | ${off.p50}/${off.p99}  ${off.rps.toFixed(0)} | ${on.p50}/${on.p99}  ${on.rps.toFixed(0)} | ${(on.rps / off.rps).toFixed(3)}`);
  }
  console.log(`median: AUTH=on serves ${(median(ratios) * 100).toFixed(1)}% of AUTH=off's requests a second; ${median(extraMs).toFixed(3)} ms more per request at this concurrency`);
  console.log(`one HGETALL of a key's record from this process: ${(await hgetallMicroseconds(key)).toFixed(1)} µs (round trip included)`);
} finally {
  for (const child of children) child.kill('SIGTERM');
  await Promise.all(children.map((child) => new Promise((resolve) => (child.exitCode !== null ? resolve(null) : child.once('exit', resolve)))));
  const stale = await redis.keys(`${prefix}:*`);
  if (stale.length > 0) await redis.del(...stale);
  redis.disconnect();
  await rm(results, { recursive: true, force: true });
}
