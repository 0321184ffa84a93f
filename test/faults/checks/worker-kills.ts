import { QUEUE_NAME } from '@pixelflow/queue';
import type { Job } from '@pixelflow/schemas';
import { MAX_STALLED_COUNT } from '../../../services/worker/src/job-processor.ts';
import { count, Tally, type CheckReport, type Verdict } from '../report.ts';
import { checkImages, eventCounts, modelShape, randomGeneration, rerunDiffers, scrape, submit, waitFinished } from '../jobs.ts';
import type { Random } from '../random.ts';
import { sleep } from '../raw-http.ts';
import { metricValue, type Deployment, type WorkerProcess } from '../services.ts';

// A worker SIGKILLed at random moments while it works through a queue of jobs, and started again
// each time. Nothing may be lost or done twice: every job succeeds, with exactly one final event;
// every image the job reports is the one on disk and the one served; and each job's images are
// byte-identical to a clean rerun of its parameters (MAX_BATCH=1, the setting for byte-identical
// reruns: docs/operators/batching.md). No kill lands while a job runs that has been interrupted
// MAX_STALLED_COUNT times already: BullMQ then fails it for stalling too often, on purpose, and
// that would be this check's doing, not a loss.

export interface WorkerKillOptions {
  jobs: number;
  kills: number;
}

/** Short locks and stalled checks, so that a killed worker's jobs come back within seconds. */
const WORKER_ENV = { LOCK_DURATION_MS: '2000', STALLED_INTERVAL_MS: '1000', MAX_BATCH: '1', MAX_CONCURRENT_JOBS: '4' };

export async function runWorkerKills(deployment: Deployment, random: Random, options: WorkerKillOptions): Promise<CheckReport> {
  const started = performance.now();
  const api = await deployment.startApi();
  let worker: WorkerProcess = await deployment.startWorker(WORKER_ENV);
  const shape = await modelShape(api.url);
  const ids: string[] = [];
  for (let i = 0; i < options.jobs; i++) {
    const submitted = await submit(api.url, randomGeneration(random, shape, { min: 10, max: 60 }));
    if (!submitted.id) throw new Error(`job ${i + 1} was refused (${submitted.status} ${submitted.problemType ?? ''})`);
    ids.push(submitted.id);
  }

  // Kill k lands once about k/kills of the first 70% of the jobs have finished (give or take a
  // third of a share), at a random moment while the worker runs some: spread over the load, and
  // done while jobs that were never interrupted remain. Near the end every job left may have been
  // interrupted MAX_STALLED_COUNT times already, and none of them may be interrupted again.
  const finishedSoFar = async (): Promise<number> => {
    const metrics = await scrape(api.url);
    const queued = (metricValue(metrics, 'pixelflow_queue_jobs{state="waiting"}') ?? 0) + (metricValue(metrics, 'pixelflow_queue_jobs{state="active"}') ?? 0);
    return ids.length - queued;
  };
  const redis = deployment.redisClient();
  const held = (): Promise<string[]> => redis.lrange(`${deployment.prefix}:${QUEUE_NAME}:active`, 0, -1);
  const share = (ids.length * 0.7) / options.kills;
  const interruptions = new Map<string, number>();
  let kills = 0;
  for (let k = 1; k <= options.kills; k++) {
    const target = Math.round(k * share + random.int(-Math.floor(share / 3), Math.floor(share / 3)));
    const deadline = Date.now() + 120_000;
    while ((await finishedSoFar()) < target && Date.now() < deadline) await sleep(100);
    await sleep(random.int(0, 300));
    // Running something, and holding nothing BullMQ would fail if it were interrupted once more.
    let ready = false;
    while (!ready && Date.now() < deadline) {
      if (((await worker.running()) ?? 0) > 0) ready = (await held()).every((id) => (interruptions.get(id) ?? 0) < MAX_STALLED_COUNT);
      if (!ready) await sleep(20);
    }
    if (!ready) break;
    await worker.stop('SIGKILL');
    kills += 1;
    // With no worker alive, what BullMQ counts active is what the dead one held (taken, started or
    // not; and any job an earlier kill left there that no stalled check has returned yet, counted
    // again to be safe).
    for (const id of await held()) interruptions.set(id, (interruptions.get(id) ?? 0) + 1);
    worker = await deployment.startWorker(WORKER_ENV);
  }

  const final = await waitFinished(api.url, ids, 60_000 + options.jobs * 5_000);
  const tally = new Tally();
  const faults: string[] = [];
  const succeeded: Job[] = [];
  let attempts = 0;
  let partials = 0;
  let duplicated = 0;
  for (const id of ids) {
    const view = final.get(id);
    const events = await eventCounts(redis, deployment.prefix, id);
    attempts += events.started;
    tally.add(view?.status ?? 'not found');
    if (view?.status !== 'succeeded') faults.push(`${id}: ${view?.status ?? 'not found'}${view?.error ? ` (${view.error.type}: ${view.error.message})` : ''}`);
    if (events.finals !== 1) {
      if (events.finals > 1) duplicated += 1;
      faults.push(`${id}: ${events.finals} final events (${events.names.filter((n) => n !== 'progress' && n !== 'stage').join(' ')})`);
    }
    if (view?.status === 'succeeded') {
      succeeded.push(view);
      const images = await checkImages(api.url, deployment, view);
      faults.push(...images.faults);
      partials += images.partials;
    }
  }
  await redis.quit();
  const rerun = await rerunDiffers(api.url, succeeded, 60_000 + succeeded.length * 5_000);
  const imageFaults = faults.filter((f) => /sha256|on disk|answered|unexpected files|images reported/.test(f)).length;
  const verdicts: Verdict[] = [
    { ok: kills === options.kills, text: `SIGKILLs while jobs ran: ${kills} of ${options.kills}, interrupting ${interruptions.size} jobs (${[...interruptions.values()].filter((n) => n > 1).length} more than once)` },
    { ok: tally.get('succeeded') === ids.length, text: `jobs succeeded: ${count(tally.get('succeeded'))} of ${count(ids.length)} (none lost)` },
    { ok: duplicated === 0 && !faults.some((f) => f.includes('0 final events')), text: `jobs with other than one final event: ${duplicated} duplicated, ${faults.filter((f) => f.includes(': 0 final events')).length} with none` },
    { ok: imageFaults === 0, text: `images whose file or served bytes differ from the sha256 reported, or are missing: ${imageFaults}` },
    { ok: rerun.differing.length === 0 && rerun.unfinished === 0, text: `jobs byte-identical to a clean rerun: ${count(succeeded.length - rerun.differing.length - rerun.unfinished)} of ${count(succeeded.length)}` },
  ];
  return {
    name: `Worker SIGKILLs under load: ${options.kills} kills over ${options.jobs} jobs`,
    sent: `${count(ids.length)} jobs (random class, 1-4 images, 10-60 steps a stage, 15% Dopri5), ${kills} SIGKILLs, ${count(succeeded.length)} reruns`,
    cameBack: `${tally.describe()}; ${count(attempts)} attempts; ${partials} .partial files left by kills`,
    verdicts,
    notes: [...faults.slice(0, 8), ...rerun.differing.slice(0, 4).map((d) => `differs from its rerun: ${d}`)],
    seconds: (performance.now() - started) / 1000,
  };
}
