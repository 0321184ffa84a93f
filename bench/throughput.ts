// bench/throughput: jobs per second through the whole service (API + worker + Redis) when many
// small jobs arrive at once. `pnpm bench:throughput [--model DIR]... [--medium] [--jobs N]`.
//
// For each model, four runs of N one-image jobs, each on a fresh API + worker (child processes,
// as `pnpm start` runs them) under a key prefix of its own on the local Redis:
//  - sequential: each job posted when the previous one succeeded (what one user sees alone), on a
//    worker with batching off and on a worker with the defaults (a lone job must not be slower);
//  - concurrent, one at a time: all N posted at once to a worker with MAX_CONCURRENT_JOBS=1 and
//    MAX_BATCH=1 (the service before continuous batching);
//  - concurrent: all N posted at once to a worker with the defaults (continuous batching).
// Each reports jobs/s, latency p50/p95 (POST -> succeeded), the mean number of images per model
// call and the model time per job, both read from the worker's own /metrics. Ratios are against
// the sequential run of the same model, measured in the same run of this script.
// --medium adds a random 64 px model of a realistic width (7.5M parameters), made once with our
// Python tools into ~/.cache/pixelflow/bench/ (needs /usr/bin/python3 with torch and onnx).

import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { createApiClient, dataOf, followJobEvents, type JobEvent } from '@pixelflow/client';
import { DEFAULT_MODEL_DIR, loadModelDir } from '@pixelflow/formats';
import { OnnxModel } from '@pixelflow/onnx';
import { ortThreadsOnSharedMachine } from '../services/worker/src/config.ts';
import { batchScaling, SCALING_BATCHES } from './batch-scaling.ts';
import { mediumModel } from './medium-model.ts';
import { benchServiceEnv, prepareServices, startService, until } from './service-processes.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string', multiple: true },
    medium: { type: 'boolean', default: false },
    jobs: { type: 'string', default: '8' },
    steps: { type: 'string', default: '10' },
    port: { type: 'string', default: '8198' },
    'metrics-port': { type: 'string', default: '9598' },
    'scaling-only': { type: 'boolean', default: false },
  },
});
const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const jobs = Number(values.jobs);
const base = `http://127.0.0.1:${values.port}`;
// As `pnpm start` runs the worker: every CPU but one, left to the API and Redis.
const ortThreads = ortThreadsOnSharedMachine();
const metricsUrl = `http://127.0.0.1:${values['metrics-port']}/metrics`;
const request = { class: 1, num_images: 1, steps: Number(values.steps) };
const client = createApiClient(base);

interface RunResult {
  label: string;
  jobsPerSecond: number;
  p50: number;
  p95: number;
  meanBatch: number;
  modelSecondsPerJob: number;
}

/** The sum of a metric's samples over all its label sets, from Prometheus text. */
function metric(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const sampleName = line.split(/[{ ]/, 1)[0];
    if (sampleName === name) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

function fmt(n: number, digits = 1): string {
  return n.toFixed(digits);
}

function quantile(xs: number[], q: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

async function oneJob(): Promise<number> {
  const started = performance.now();
  const job = await dataOf(client.POST('/jobs', { body: request }));
  let last: JobEvent | undefined;
  for await (const event of followJobEvents(base, job.id)) last = event;
  if (last?.event !== 'succeeded') throw new Error(`job ${job.id} did not succeed: ${JSON.stringify(last)}`);
  return performance.now() - started;
}

async function measure(model: string, label: string, concurrent: boolean, workerEnv: Record<string, string>): Promise<RunResult> {
  const prefix = `pfbench-${randomBytes(4).toString('hex')}`;
  const results = await mkdtemp(join(tmpdir(), 'pixelflow-bench-'));
  const env = { ...benchServiceEnv({ redisUrl: REDIS_URL, prefix, model, results, port: values.port, metricsPort: values['metrics-port'], ortThreads }), ...workerEnv };
  const children: ChildProcess[] = [];
  const start = (name: 'api' | 'worker'): void => {
    children.push(startService(name, env));
  };
  const redis = new Redis(REDIS_URL);
  try {
    // Another service on these ports (one left over, say) would answer in place of ours.
    if (await fetch(`${base}/healthz`).then(() => true, () => false)) throw new Error(`${base} already answers: stop what listens there or pass --port`);
    start('api');
    start('worker');
    await until(async () => (await client.GET('/readyz')).response.ok, 'the service');
    if (children.some((child) => child.exitCode !== null)) throw new Error('the API or the worker exited at start (see its message above)');
    await oneJob(); // warm: first allocations, first PNG, Redis scripts loaded
    const before = await (await fetch(metricsUrl)).text();
    const started = performance.now();
    let latencies: number[] = [];
    if (concurrent) latencies = await Promise.all(Array.from({ length: jobs }, () => oneJob()));
    else for (let i = 0; i < jobs; i++) latencies.push(await oneJob());
    const wall = (performance.now() - started) / 1000;
    const after = await (await fetch(metricsUrl)).text();
    const delta = (name: string): number => metric(after, name) - metric(before, name);
    return {
      label,
      jobsPerSecond: jobs / wall,
      p50: quantile(latencies, 0.5),
      p95: quantile(latencies, 0.95),
      meanBatch: delta('pixelflow_model_batch_images_sum') / Math.max(1, delta('pixelflow_model_batch_images_count')),
      modelSecondsPerJob: delta('pixelflow_model_call_seconds_sum') / jobs,
    };
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
    await Promise.all(children.map((child) => (child.exitCode === null ? new Promise((resolve) => child.once('exit', resolve)) : null)));
    const stale = await redis.keys(`${prefix}:*`);
    if (stale.length > 0) await redis.del(...stale);
    redis.disconnect();
    await rm(results, { recursive: true, force: true });
  }
}

/** ms per onnxruntime call at each stage resolution and batch size (median of a few), on this machine. */
async function scalingTable(model: string): Promise<string[]> {
  const dir = await loadModelDir(model);
  const session = await OnnxModel.load(dir, { intraOpNumThreads: Number(ortThreads) });
  try {
    const scaling = await batchScaling(session, dir.manifest, 6);
    const lines = [
      `\n${dir.manifest.name}: ms per model call by batch size (rows), and per row against batch 1 (${ortThreads} onnxruntime threads)\n`,
      `| resolution | ${SCALING_BATCHES.map((b) => `batch ${b}`).join(' | ')} |`,
      `|---|${SCALING_BATCHES.map(() => '---').join('|')}|`,
    ];
    for (const [side, row] of Object.entries(scaling)) {
      const single = row[1] as number;
      const cells = SCALING_BATCHES.map((batch) => `${fmt(row[batch] as number, 2)} (${fmt((row[batch] as number) / batch / single, 2)}x)`);
      lines.push(`| ${side} px | ${cells.join(' | ')} |`);
    }
    return lines;
  } finally {
    await session.dispose();
  }
}

const models = values.model ?? [DEFAULT_MODEL_DIR];
if (values.medium) models.push(await mediumModel());
for (const model of models) {
  const name = (await loadModelDir(model)).manifest.name;
  if (values['scaling-only']) {
    console.log((await scalingTable(model)).join('\n'));
    continue;
  }
  await prepareServices();
  const off = { MAX_CONCURRENT_JOBS: '1', MAX_BATCH: '1' };
  const sequentialOff = await measure(model, 'sequential, MAX_CONCURRENT_JOBS=1', false, off);
  const sequential = await measure(model, 'sequential (defaults)', false, {});
  const unbatched = await measure(model, `${jobs} at once, MAX_CONCURRENT_JOBS=1`, true, off);
  const batched = await measure(model, `${jobs} at once (defaults)`, true, {});
  const lines = [
    `\n${name}: ${jobs} one-image jobs, ${values.steps} Euler steps per stage, the model's default CFG\n`,
    '| run | jobs/s | p50 ms | p95 ms | rows per model call | model s per job | jobs/s vs sequential |',
    '|---|---|---|---|---|---|---|',
    ...[sequentialOff, sequential, unbatched, batched].map(
      (r) => `| ${r.label} | ${fmt(r.jobsPerSecond, 2)} | ${fmt(r.p50, 0)} | ${fmt(r.p95, 0)} | ${fmt(r.meanBatch, 2)} | ${fmt(r.modelSecondsPerJob, 3)} | ${fmt(r.jobsPerSecond / sequential.jobsPerSecond, 2)}x |`,
    ),
  ];
  console.log(lines.join('\n'));
  // After the service runs: the first child processes of a run came out slower, whatever ran first.
  console.log((await scalingTable(model)).join('\n'));
}
