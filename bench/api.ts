// bench/api: what the service costs on top of the sampler. `pnpm bench:api [--model DIR]`.
//
// Starts a private API and worker (child processes, as `pnpm start` runs them) on the local Redis
// under a key prefix of its own, then measures:
//  1. POST /jobs and GET /jobs/:id: latency p50/p99 and requests/s at a fixed concurrency
//     (autocannon; no worker runs meanwhile, so this is the API and Redis alone);
//  2. per job, the time from POST to the `succeeded` event (SSE) against the sampler's own time for
//     the same request in this script (same model, same threads), alternately: the service's overhead per job.
// Prints tables; the targets and past figures are in the README's Performance section.

import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import { createApiClient, dataOf, followJobEvents, type JobEvent } from '@pixelflow/client';
import { DEFAULT_MODEL_DIR, loadModelDir } from '@pixelflow/formats';
import { OnnxModel } from '@pixelflow/onnx';
import { sample, sampleOptionsFor } from '@pixelflow/sampler';
import { parseGenerationRequest, resolveGeneration } from '@pixelflow/schemas';
import { ortThreadsOnSharedMachine } from '../services/worker/src/config.ts';
import { keepAliveFetch } from './keep-alive-fetch.ts';
import { median } from './numbers.ts';
import { benchServiceEnv, prepareServices, startService, until } from './service-processes.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: DEFAULT_MODEL_DIR },
    connections: { type: 'string', default: '10' },
    seconds: { type: 'string', default: '10' },
    jobs: { type: 'string', default: '30' },
    port: { type: 'string', default: '8199' },
  },
});
const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const connections = Number(values.connections);
const seconds = Number(values.seconds);
const jobs = Number(values.jobs);
const base = `http://127.0.0.1:${values.port}`;
// As `pnpm start` runs the worker (every CPU but one), for the worker and the sampler alone alike.
const ortThreads = Number(ortThreadsOnSharedMachine());
const prefix = `pfbench-${randomBytes(4).toString('hex')}`;
const results = await mkdtemp(join(tmpdir(), 'pixelflow-bench-'));
const env = benchServiceEnv({ redisUrl: REDIS_URL, prefix, model: values.model, results, port: values.port, metricsPort: '0', ortThreads: String(ortThreads) });
const children: ChildProcess[] = [];
await prepareServices();

function start(name: 'api' | 'worker'): ChildProcess {
  const child = startService(name, env);
  children.push(child);
  return child;
}


// Measured calls through the client, as integrators make them, on node:http (keep-alive-fetch.ts).
const client = createApiClient(base, { fetch: keepAliveFetch });

/** Milliseconds since the epoch with sub-millisecond resolution, comparable with Redis stream ids on this machine. */
function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

interface JobPhases {
  admission: number;
  pickup: number;
  sampling: number;
  /** Sampling in the service minus the sampler alone just before (a pair, as above). */
  slowdown: number;
  storing: number;
  delivery: number;
}

/** A job's phases from its SSE text: each event's id is `<Redis server ms>-<seq>`. */
function phasesOf(events: readonly JobEvent[], postedAt: number, endedAt: number, alone: number): JobPhases {
  const at = new Map<string, number>();
  let lastStage = 0;
  for (const event of events) {
    // A Redis stream id: milliseconds of the server's clock, then a sequence number.
    const ms = Number(event.id.split('-')[0]);
    if (!at.has(event.event)) at.set(event.event, ms);
    if (event.event === 'stage') lastStage = ms;
  }
  const time = (name: string): number => {
    const ms = at.get(name);
    if (ms === undefined) throw new Error(`no ${name} event in the stream`);
    return ms;
  };
  return {
    admission: time('queued') - postedAt,
    pickup: time('started') - time('queued'),
    sampling: lastStage - time('started'),
    slowdown: lastStage - time('started') - alone,
    storing: time('succeeded') - lastStage,
    delivery: endedAt - time('succeeded'),
  };
}

function fmt(n: number, digits = 1): string {
  return n.toFixed(digits);
}

const request = { class: 7, num_images: 1, steps: 10, seed: 1 };
const body = JSON.stringify(request);
const redis = new Redis(REDIS_URL);
try {
  const api = start('api');
  await until(async () => (await client.GET('/healthz')).response.ok, 'the API');

  // 1. The API alone.
  const post = await autocannon({ url: `${base}/jobs`, method: 'POST', headers: { 'content-type': 'application/json' }, body, connections, duration: seconds });
  const created = await dataOf(client.POST('/jobs', { body: request }));
  const get = await autocannon({ url: `${base}/jobs/${created.id}`, connections, duration: seconds });
  // Empty the queue the POST benchmark filled.
  await redis.del(...(await redis.keys(`${prefix}:*`)));

  // 2. Per job: POST -> succeeded over SSE, against the sampler alone.
  const dir = await loadModelDir(values.model);
  const model = await OnnxModel.load(dir, { intraOpNumThreads: ortThreads });
  // The same request as the jobs below, turned into sampler options as the worker turns it.
  const generation = resolveGeneration(parseGenerationRequest(request), dir.manifest, () => request.seed);
  start('worker');
  await until(async () => (await client.GET('/readyz')).response.ok, 'the worker');
  // Alternating, one sampler run then one job through the service: this machine's speed drifts
  // over seconds, and each pair sees about the same, so the overhead is the median of the pairs'
  // differences rather than a difference of medians taken minutes apart.
  const direct: number[] = [];
  const endToEnd: number[] = [];
  const overhead: number[] = [];
  const phases: JobPhases[] = [];
  for (let i = 0; i < jobs + 1; i++) {
    let started = performance.now();
    await sample({ ...sampleOptionsFor(generation, dir.manifest), model });
    const alone = performance.now() - started;
    started = performance.now();
    const postedAt = wallClockMs();
    const job = await dataOf(client.POST('/jobs', { body: request }));
    const events: JobEvent[] = [];
    for await (const event of followJobEvents(base, job.id, { fetch: keepAliveFetch })) events.push(event);
    if (events.at(-1)?.event !== 'succeeded') throw new Error(`job ${job.id} did not succeed: ${JSON.stringify(events.at(-1))}`);
    const served = performance.now() - started;
    const endedAt = wallClockMs();
    if (i === 0) continue; // the first pair warms up
    phases.push(phasesOf(events, postedAt, endedAt, alone));
    direct.push(alone);
    endToEnd.push(served);
    overhead.push(served - alone);
  }
  await model.dispose();

  console.log(`\nAPI alone (${connections} connections, ${seconds} s each, local Redis):\n`);
  console.log('| request | requests/s | p50 ms | p99 ms | errors |');
  console.log('|---|---|---|---|---|');
  for (const [name, r] of [['POST /jobs', post], ['GET /jobs/:id', get]] as const) {
    console.log(`| ${name} | ${fmt(r.requests.average, 0)} | ${fmt(r.latency.p50)} | ${fmt(r.latency.p99)} | ${r.errors + r.non2xx} |`);
  }
  const d = median(direct);
  const e = median(endToEnd);
  const o = median(overhead);
  console.log(`\nOne job end to end (${dir.manifest.name}, 1 image, 10 steps per stage, CFG ${generation.cfg_scale}; medians of ${jobs} alternating pairs, ${ortThreads} onnxruntime threads):\n`);
  console.log('| sampler alone ms | POST -> succeeded ms | service overhead ms | end to end / sampler |');
  console.log('|---|---|---|---|');
  console.log(`| ${fmt(d)} | ${fmt(e)} | ${fmt(o)} | ${fmt((d + o) / d, 2)}x |`);
  console.log(`\nWhere a job's time goes (medians; from the events' Redis stream ids, milliseconds of the server's clock):\n`);
  console.log('| POST -> queued event | queued -> started | started -> last stage event (sampling) | sampling minus sampler alone | last stage -> succeeded (images stored) | succeeded -> client has it |');
  console.log('|---|---|---|---|---|---|');
  const phase = (key: keyof JobPhases): string => fmt(median(phases.map((p) => p[key])));
  console.log(`| ${phase('admission')} | ${phase('pickup')} | ${phase('sampling')} | ${phase('slowdown')} | ${phase('storing')} | ${phase('delivery')} |`);
  api.kill('SIGTERM');
} finally {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 500));
  const stale = await redis.keys(`${prefix}:*`);
  if (stale.length > 0) await redis.del(...stale);
  redis.disconnect();
  await rm(results, { recursive: true, force: true });
}
