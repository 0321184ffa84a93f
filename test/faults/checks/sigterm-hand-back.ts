import type { Job } from '@pixelflow/schemas';
import { plural, Tally, type CheckReport, type Verdict } from '../report.ts';
import { checkImages, eventCounts, getJob, modelShape, rerunDiffers, submit, waitFinished } from '../jobs.ts';
import type { Random } from '../random.ts';
import { sleep } from '../raw-http.ts';
import type { Deployment } from '../services.ts';

// SIGTERM mid-job: the worker stops taking jobs, gives the running ones SHUTDOWN_GRACE_MS, hands
// back those still running and exits. With no worker left, each handed-back job must read queued
// (with its place, without the stopped attempt's progress) and keep reading so, its event stream
// must say queued again, and the next worker must finish it: one final event, its images as
// reported on disk and over HTTP, and the same bytes as a clean run of its parameters.

export interface SigtermOptions {
  jobs: number;
}

/** Short, so that the jobs (hundreds of model calls each) are still running when it ends. */
const SHUTDOWN_GRACE_MS = 500;

export async function runSigtermHandBack(deployment: Deployment, random: Random, options: SigtermOptions): Promise<CheckReport> {
  const started = performance.now();
  const workerEnv = { SHUTDOWN_GRACE_MS: String(SHUTDOWN_GRACE_MS), MAX_BATCH: '1', MAX_CONCURRENT_JOBS: String(Math.max(options.jobs, 1)) };
  const api = await deployment.startApi();
  const first = await deployment.startWorker(workerEnv);
  const shape = await modelShape(api.url);
  const ids: string[] = [];
  for (let i = 0; i < options.jobs; i++) {
    const steps = Array.from({ length: shape.stages }, () => random.int(80, 100));
    const submitted = await submit(api.url, { class: random.int(0, shape.classes - 1), num_images: 4, seed: random.int(0, 0xffff_ffff), steps, solver: 'euler' });
    if (!submitted.id) throw new Error(`a job was refused (${submitted.status})`);
    ids.push(submitted.id);
  }
  // Every job running, with some progress, before the signal.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const views = await Promise.all(ids.map((id) => getJob(api.url, id)));
    if (views.every((v) => v?.status === 'running' && (v.progress?.step ?? 0) > 0) || Date.now() > deadline) break;
    await sleep(50);
  }
  const signalled = performance.now();
  const exit = await first.stop('SIGTERM');
  const exitMs = performance.now() - signalled;

  // No worker now: what do the jobs say, at once and a second later?
  const tally = new Tally();
  const faults: string[] = [];
  const handedBack: string[] = [];
  const readNow = await Promise.all(ids.map((id) => getJob(api.url, id)));
  await sleep(1000);
  const readLater = await Promise.all(ids.map((id) => getJob(api.url, id)));
  const redis = deployment.redisClient();
  for (const [i, id] of ids.entries()) {
    const now = readNow[i];
    const later = readLater[i];
    if (now?.status === 'succeeded') {
      tally.add('finished within the grace period');
      continue;
    }
    handedBack.push(id);
    const consistent = (view: Job | null | undefined): boolean => view?.status === 'queued' && view.queue_position !== null && view.progress === null;
    if (!consistent(now) || !consistent(later)) {
      tally.add('handed back, not reading queued');
      faults.push(`${id}: read ${now?.status ?? 'not found'} (position ${now?.queue_position ?? null}, progress ${now?.progress ? 'kept' : 'cleared'}) at once, ${later?.status ?? 'not found'} a second later`);
    } else tally.add('handed back, reading queued');
    const events = await eventCounts(redis, deployment.prefix, id);
    const lastState = events.names.filter((n) => n !== 'progress' && n !== 'stage').at(-1);
    if (lastState !== 'queued') faults.push(`${id}: its last state event is ${lastState ?? 'none'}, not queued`);
  }

  // The next worker finishes them.
  await deployment.startWorker(workerEnv);
  const final = await waitFinished(api.url, ids, 120_000);
  const finished: Job[] = [];
  let imageFaults = 0;
  for (const id of ids) {
    const view = final.get(id);
    const events = await eventCounts(redis, deployment.prefix, id);
    tally.add(view?.status === 'succeeded' ? 'succeeded' : `ended ${view?.status ?? 'not found'}`);
    if (view?.status !== 'succeeded') faults.push(`${id}: ${view?.status ?? 'not found'} after the next worker ran`);
    if (events.finals !== 1) faults.push(`${id}: ${events.finals} final events`);
    if (handedBack.includes(id) && events.started < 2) faults.push(`${id}: handed back but started ${events.started} time(s)`);
    if (view?.status === 'succeeded') {
      finished.push(view);
      const images = await checkImages(api.url, deployment, view);
      imageFaults += images.faults.length;
      faults.push(...images.faults);
    }
  }
  await redis.quit();
  const rerun = await rerunDiffers(api.url, finished, 120_000);
  const verdicts: Verdict[] = [
    { ok: handedBack.length > 0, text: `jobs running at SIGTERM and handed back: ${handedBack.length} of ${ids.length}` },
    { ok: exit.code === 0 && exit.signal === null, text: `the worker exited ${exit.signal ?? `with code ${exit.code}`} ${(exitMs / 1000).toFixed(1)} s after SIGTERM (SHUTDOWN_GRACE_MS ${SHUTDOWN_GRACE_MS})` },
    { ok: tally.get('handed back, not reading queued') === 0, text: `handed-back jobs reading queued, with a place and no progress, while no worker runs: ${tally.get('handed back, reading queued')} of ${handedBack.length}` },
    { ok: tally.get('succeeded') === ids.length, text: `finished by the next worker: ${tally.get('succeeded')} of ${ids.length}` },
    { ok: faults.length === 0, text: `one final event each, queued again in the events, images as reported: ${faults.length === 0 ? 'yes' : `${faults.length} faults (${imageFaults} in images)`}` },
    { ok: rerun.differing.length === 0 && rerun.unfinished === 0, text: `byte-identical to a clean rerun: ${finished.length - rerun.differing.length - rerun.unfinished} of ${finished.length}` },
  ];
  return {
    name: 'SIGTERM hand-back: worker stopped mid-job',
    sent: `${plural(ids.length, 'job')} of ${shape.stages} x 80-100 steps, 4 images; SIGTERM once all ran; a second worker; ${plural(finished.length, 'rerun')}`,
    cameBack: tally.describe(),
    verdicts,
    notes: [...faults.slice(0, 8), ...rerun.differing.slice(0, 4).map((d) => `differs from its rerun: ${d}`)],
    seconds: (performance.now() - started) / 1000,
  };
}
