// bench/cluster: throughput of several workers sharing one queue against one worker, measured in
// the same run. `pnpm bench:cluster [--workers N] [--jobs N] [--steps N] [--model DIR] [--slots N]`.
//
// Three deployments, each fresh: 1 worker with one onnxruntime thread (the baseline), 1 worker with
// a thread per CPU, and --workers workers (3 by default) with one thread each. Each is one API
// and the workers as child processes (the compiled bundles `pnpm start` runs, test/cluster/cluster.ts)
// on the local Redis under a key prefix of their own, on the random medium model of
// bench:throughput --medium (made once, bench/medium-model.ts) unless --model says otherwise. After
// one warm-up job, --jobs one-image jobs are posted at once and followed over SSE to their end. Each
// run reports jobs/s (ratio to the 1-worker run), latency p50/p95 (POST -> succeeded), how the jobs
// spread over the workers, the mean images per model call and the model time per job.
//
// What it measures depends on the machine. With one GPU per worker, N workers add N times the
// compute. On a CPU-only machine they add none: the workers split the same cores. There, compare the
// N workers with the one worker that uses every CPU: the difference is what sharing one queue costs
// or gains (coordination through Redis, N model copies, smaller batches per worker, calls of
// different workers overlapping), not a speed-up from more hardware.

import { availableParallelism, cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { createApiClient, dataOf, followJobEvents, type JobEvent } from '@pixelflow/client';
import { Cluster } from '../test/cluster/cluster.ts';
import { mediumModel } from './medium-model.ts';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '3' },
    jobs: { type: 'string', default: '24' },
    steps: { type: 'string', default: '10' },
    model: { type: 'string' },
    slots: { type: 'string', default: '8' },
  },
});
const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const jobs = Number(values.jobs);
const allCpus = availableParallelism();
/** The deployments measured, the baseline first. */
const configurations = [
  { workers: 1, threads: 1 },
  ...(allCpus > 1 ? [{ workers: 1, threads: allCpus }] : []),
  { workers: Number(values.workers), threads: 1 },
];
const request = { class: 1, num_images: 1, steps: Number(values.steps) };

interface Run {
  workers: number;
  threads: number;
  jobsPerSecond: number;
  p50: number;
  p95: number;
  perWorker: number[];
  meanBatch: number;
  modelSecondsPerJob: number;
}

/** The sum of a metric's samples over all its label sets, from Prometheus text. */
function metric(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.split(/[{ ]/, 1)[0] === name) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

function quantile(xs: readonly number[], q: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

async function oneJob(base: string): Promise<number> {
  const client = createApiClient(base);
  const started = performance.now();
  const job = await dataOf(client.POST('/jobs', { body: request }));
  let last: JobEvent | undefined;
  for await (const event of followJobEvents(base, job.id)) last = event;
  if (last?.event !== 'succeeded') throw new Error(`job ${job.id} did not succeed: ${JSON.stringify(last)}`);
  return performance.now() - started;
}

async function measure(model: string, workers: number, threads: number): Promise<Run> {
  const cluster = await Cluster.create({
    redisUrl: REDIS_URL,
    model,
    logLevel: 'warn',
    env: { ORT_THREADS: String(threads), MAX_CONCURRENT_JOBS: values.slots, QUEUE_CAP: '1000000', HEARTBEAT_INTERVAL_MS: '1000' },
  });
  try {
    const api = await cluster.startApi();
    const started = await Promise.all(Array.from({ length: workers }, () => cluster.startWorker()));
    await oneJob(api.url); // warm: Redis scripts loaded, the first allocations
    const scrape = () => Promise.all(started.map((w) => w.metrics()));
    const before = await scrape();
    const t0 = performance.now();
    const latencies = await Promise.all(Array.from({ length: jobs }, () => oneJob(api.url)));
    const wall = (performance.now() - t0) / 1000;
    const after = await scrape();
    const delta = (name: string, i: number): number => metric(after[i] as string, name) - metric(before[i] as string, name);
    const total = (name: string): number => started.reduce((sum, _, i) => sum + delta(name, i), 0);
    return {
      workers,
      threads,
      jobsPerSecond: jobs / wall,
      p50: quantile(latencies, 0.5),
      p95: quantile(latencies, 0.95),
      perWorker: started.map((_, i) => delta('pixelflow_jobs_finished_total', i)),
      meanBatch: total('pixelflow_model_batch_images_sum') / Math.max(1, total('pixelflow_model_batch_images_count')),
      modelSecondsPerJob: total('pixelflow_model_call_seconds_sum') / jobs,
    };
  } catch (error) {
    for (const p of [...cluster.apis, ...cluster.workers]) process.stderr.write(`--- ${p.name} (${p.logFile})\n${await p.tail(10)}\n`);
    throw error;
  } finally {
    await cluster.stop();
  }
}

async function main(): Promise<void> {
  const model = values.model ?? (await mediumModel());
  const runs: Run[] = [];
  for (const { workers, threads } of configurations) {
    process.stderr.write(`bench:cluster: ${workers} worker(s) x ${threads} thread(s), ${jobs} jobs...\n`);
    runs.push(await measure(model, workers, threads));
  }
  const baseline = runs[0] as Run;
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  console.log(`\nbench:cluster: ${jobs} one-image jobs of ${request.steps} steps per stage posted at once to one API, model ${model}`);
  console.log(`machine: ${cpu}, ${allCpus} CPUs, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; MAX_CONCURRENT_JOBS=${values.slots}; API, workers and Redis on this machine`);
  console.log(`command: pnpm bench:cluster ${process.argv.slice(2).join(' ')}`.trimEnd());
  console.log('');
  console.log('| workers x ORT_THREADS | jobs/s | vs 1 x 1 | p50 latency | p95 latency | jobs per worker | images per model call | model s per job |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const run of runs) {
    console.log(
      `| ${run.workers} x ${run.threads} | ${run.jobsPerSecond.toFixed(2)} | ${(run.jobsPerSecond / baseline.jobsPerSecond).toFixed(2)}x | ${(run.p50 / 1000).toFixed(1)} s | ${(run.p95 / 1000).toFixed(1)} s | ${run.perWorker.join(' / ')} | ${run.meanBatch.toFixed(1)} | ${run.modelSecondsPerJob.toFixed(2)} |`,
    );
  }
  const most = Math.max(...configurations.map((c) => c.workers));
  if (allCpus < 2 * most) {
    console.log('');
    console.log(
      `On ${allCpus} CPUs, ${most} workers add no compute: they share the cores that 1 worker x ${allCpus} threads already uses, so the comparison with that row is what sharing one queue costs or gains (coordination through Redis, a model copy per worker, smaller batches each), not a speed-up. With a GPU per worker, each worker adds its GPU.`,
    );
  }
}

await main();
