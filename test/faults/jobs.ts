import { createHash } from 'node:crypto';
import { JobEvents, keys } from '@pixelflow/queue';
import type { Job } from '@pixelflow/schemas';
import type { Redis } from 'ioredis';
import type { Random } from './random.ts';
import { problemFault, rawGet, sleep } from './raw-http.ts';
import type { Deployment } from './services.ts';

// Talking to the service the way its users do (POST /jobs, GET /jobs/{id}, the PNGs), and reading
// what a job left in Redis: its event stream is where "exactly one final event" is decided, so it
// is read whole there rather than through an SSE stream that stops at the first final event.

export interface Generation {
  class: number;
  num_images: number;
  seed: number;
  steps: number[];
  solver: 'euler' | 'dopri5';
  cfg_scale: number;
  noise_shift: number;
}

/** What the served model looks like, from GET /models and /models/classes. */
export interface ModelShape {
  stages: number;
  classes: number;
}

export async function modelShape(url: string): Promise<ModelShape> {
  const models = (await (await fetch(`${url}/models`)).json()) as { models: { stages: unknown[]; classes: number }[] };
  const model = models.models[0];
  if (!model) throw new Error('GET /models lists no model');
  return { stages: model.stages.length, classes: model.classes };
}

/** A random request with its seed given, so that the same parameters can be run again. */
export function randomGeneration(random: Random, shape: ModelShape, steps: { min: number; max: number }): Generation {
  return {
    class: random.int(0, shape.classes - 1),
    num_images: random.int(1, 4),
    seed: random.int(0, 0xffff_ffff),
    steps: Array.from({ length: shape.stages }, () => random.int(steps.min, steps.max)),
    solver: random.chance(0.15) ? 'dopri5' : 'euler',
    cfg_scale: random.pick([1, 2.5, 4, 7.5]),
    noise_shift: random.pick([1, 2, 3]),
  };
}

export interface Submitted {
  status: number;
  id: string | null;
  /** Why an error answer is not a problem+json document, or null. */
  fault: string | null;
  retryAfter: string | null;
  problemType: string | null;
}

export async function submit(url: string, body: unknown): Promise<Submitted> {
  const response = await fetch(`${url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await response.text();
  const fault = problemFault(response.status, response.headers.get('content-type') ?? undefined, text);
  let id: string | null = null;
  let problemType: string | null = null;
  try {
    const parsed = JSON.parse(text) as { id?: unknown; type?: unknown };
    if (response.status === 202 && typeof parsed.id === 'string') id = parsed.id;
    if (typeof parsed.type === 'string') problemType = parsed.type;
  } catch {
    // fault says so for error answers
  }
  return { status: response.status, id, fault, retryAfter: response.headers.get('retry-after'), problemType };
}

export async function getJob(url: string, id: string): Promise<Job | null> {
  const response = await fetch(`${url}/jobs/${id}`);
  if (response.status !== 200) {
    await response.body?.cancel();
    return null;
  }
  return (await response.json()) as Job;
}

const FINISHED = new Set(['succeeded', 'failed', 'canceled']);

/**
 * Polls until every job has finished or `timeoutMs` has passed; the last view of each job (null for
 * one the API did not find, or could not answer for, at the last read).
 */
export async function waitFinished(url: string, ids: readonly string[], timeoutMs: number): Promise<Map<string, Job | null>> {
  const views = new Map<string, Job | null>(ids.map((id) => [id, null]));
  const deadline = Date.now() + timeoutMs;
  let pending = [...ids];
  while (pending.length > 0) {
    const read = await Promise.all(pending.map(async (id) => [id, await getJob(url, id).catch(() => null)] as const));
    for (const [id, view] of read) if (view !== null) views.set(id, view);
    pending = pending.filter((id) => !FINISHED.has(views.get(id)?.status ?? ''));
    if (pending.length === 0 || Date.now() > deadline) break;
    await sleep(250);
  }
  return views;
}

export interface EventCounts {
  /** succeeded, failed and canceled events: exactly one for a finished job. */
  finals: number;
  /** started events: one per attempt. */
  started: number;
  queued: number;
  /** Every event name in order. */
  names: string[];
  lastId: string | null;
}

/** All of a job's events, read from its Redis stream (the SSE ids' source). */
export async function eventCounts(redis: Redis, prefix: string, id: string): Promise<EventCounts> {
  const events = new JobEvents(redis, keys(prefix));
  const names: string[] = [];
  let cursor: string | undefined;
  let lastId: string | null = null;
  for (;;) {
    const batch = await events.read(id, cursor, 1000);
    for (const event of batch) names.push(event.name);
    if (batch.length < 1000) {
      lastId = batch.at(-1)?.id ?? lastId;
      break;
    }
    cursor = batch.at(-1)?.id;
    lastId = cursor ?? lastId;
  }
  return {
    finals: names.filter((n) => FINISHED.has(n)).length,
    started: names.filter((n) => n === 'started').length,
    queued: names.filter((n) => n === 'queued').length,
    names,
    lastId,
  };
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * The images of a succeeded job as reported, served and stored: each served PNG's and each file's
 * sha256 must be the one the job reports, and the job's folder must hold exactly its images and
 * stage previews (a `.partial` file is a write a kill cut short: counted, not a fault, as no one
 * serves it and the folder goes when the job expires).
 */
export async function checkImages(url: string, deployment: Deployment, job: Job): Promise<{ hashes: string[]; faults: string[]; partials: number }> {
  const faults: string[] = [];
  const images = job.result?.images ?? [];
  if (images.length !== job.parameters.num_images) faults.push(`${job.id}: ${images.length} images reported for num_images ${job.parameters.num_images}`);
  for (const [n, image] of images.entries()) {
    const response = await fetch(`${url}${image.url}`);
    const served = Buffer.from(await response.arrayBuffer());
    if (response.status !== 200) faults.push(`${job.id}: GET ${image.url} answered ${response.status}`);
    else if (sha256(served) !== image.sha256) faults.push(`${job.id}: GET ${image.url} serves sha256 ${sha256(served).slice(0, 12)}, the job reports ${image.sha256.slice(0, 12)}`);
    const stored = await deployment.readResult(job.id, `image-${n}.png`);
    if (!stored) faults.push(`${job.id}: image-${n}.png is not on disk`);
    else if (sha256(stored) !== image.sha256) faults.push(`${job.id}: image-${n}.png on disk has sha256 ${sha256(stored).slice(0, 12)}, the job reports ${image.sha256.slice(0, 12)}`);
  }
  const expected = new Set([...images.keys()].map((n) => `image-${n}.png`));
  for (let stage = 0; stage < job.parameters.steps.length; stage++) expected.add(`stage-${stage}.png`);
  const files = await deployment.jobFiles(job.id);
  const partials = files.filter((f) => f.endsWith('.partial')).length;
  const strays = files.filter((f) => !expected.has(f) && !f.endsWith('.partial'));
  if (strays.length > 0) faults.push(`${job.id}: unexpected files ${strays.join(', ')}`);
  return { hashes: images.map((i) => i.sha256), faults, partials };
}

/** A Prometheus scrape of the API (a fresh connection, closed after, so that it holds no descriptor). */
export async function scrape(url: string): Promise<string> {
  return (await rawGet(Number(new URL(url).port), '/metrics')).body;
}

/** Runs `task` over `items` with at most `limit` at once; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index] as T, index);
    }
  });
  await Promise.all(lanes);
  return results;
}

/** The request that runs `job` again with the same parameters (its seed included). */
export function requestOf(job: Job): Generation {
  const p = job.parameters;
  return { class: p.class_label, num_images: p.num_images, seed: p.seed, steps: [...p.steps], solver: p.solver, cfg_scale: p.cfg_scale, noise_shift: p.noise_shift };
}

/**
 * Runs each job's parameters again on an undisturbed worker and says which jobs' images differ
 * from the first run's (by sha256): the service promises byte-identical images for a rerun with
 * MAX_BATCH=1 (docs/operators/batching.md).
 */
export async function rerunDiffers(url: string, jobs: readonly Job[], timeoutMs: number): Promise<{ differing: string[]; unfinished: number }> {
  const pairs: { original: Job; id: string | null }[] = [];
  for (const original of jobs) pairs.push({ original, id: (await submit(url, requestOf(original))).id });
  const ids = pairs.map((p) => p.id).filter((id): id is string => id !== null);
  const views = await waitFinished(url, ids, timeoutMs);
  const differing: string[] = [];
  let unfinished = 0;
  for (const { original, id } of pairs) {
    const rerun = id ? views.get(id) : null;
    if (rerun?.status !== 'succeeded') {
      unfinished += 1;
      continue;
    }
    const first = (original.result?.images ?? []).map((i) => i.sha256).join(',');
    const second = (rerun.result?.images ?? []).map((i) => i.sha256).join(',');
    if (first !== second) differing.push(`${original.id} (rerun ${rerun.id})`);
  }
  return { differing, unfinished };
}
