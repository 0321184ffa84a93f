import { createHash } from 'node:crypto';
import type { JobEvents, JobRecord, JobRecords } from '@pixelflow/queue';
import { imageKey, previewKey, type ResultStore } from '@pixelflow/results';
import { encodeGeneratedPngsWith, type ModelDir, type PngEncoderPool } from '@pixelflow/formats';
import { sample, sampleOptionsFor, type BatchingModel, type SampleResult } from '@pixelflow/sampler';
import type { JobImage, JobProgress, ResolvedGeneration } from '@pixelflow/schemas';
import type { Logger } from 'pino';
import type { WorkerMetrics } from './metrics.ts';
import { ProgressReporter } from './progress-reporter.ts';
import { SideEffects } from './side-effects.ts';
import { ABORT_LOCK_LOST, ABORT_SHUTDOWN, errorLine, type JobEnding, type JobOutcome } from './job-outcome.ts';

// One job, from its record to its images: take it (unless it was canceled
// meanwhile), run the cascaded sampler with progress and stage previews going
// to the job's record and event stream, store the PNGs, and say how it came
// out. It never ends the job itself: the caller does that with the outcome.
// The model computes in onnxruntime's worker thread, so this event loop stays
// free to renew BullMQ locks, hear cancel requests and run other jobs.

const INLINE_PREVIEW_BYTES = 16 * 1024;
/**
 * Progress events go out in bursts at most this often (each model call still has its own event):
 * ten updates a second, as progress bars refresh (tqdm's default), instead of one write, one wake-up
 * of every API process following the job and one network write per client for every model call.
 */
const PROGRESS_INTERVAL_MS = 100;

export interface JobRunnerDeps {
  records: JobRecords;
  events: JobEvents;
  store: ResultStore;
  /** Shared by the jobs running at once; each calls it with its own signal. */
  model: Pick<BatchingModel, 'withSignal'>;
  modelDir: ModelDir;
  /** Encodes previews and images off the event loop, which other jobs' calls and lock renewals need. */
  pngs: PngEncoderPool;
  log: Logger;
  metrics: WorkerMetrics;
  /** Hears each model call's work as it completes (job images x 1 call), for worker throughput. */
  onImageSteps?: (imageSteps: number) => void;
}

/**
 * Runs job `id`. `signal` aborts with ABORT_CANCELED (the job ends canceled, keeping its previews),
 * ABORT_SHUTDOWN or ABORT_LOCK_LOST (the job is let go, for the queue to give to a worker again).
 * Resolves with the outcome; rejects only when the job could not even be taken.
 */
export async function runJob(runner: JobRunnerDeps, id: string, signal: AbortSignal): Promise<JobOutcome> {
  const startedAt = new Date();
  const record = await runner.records.start(id, startedAt);
  if (record?.status !== 'running') {
    const status = record?.status ?? null;
    runner.log.info({ status }, status === null ? 'job record is gone; skipping' : `job is ${status}; skipping`);
    return { kind: 'skipped', status };
  }
  // The id of the HTTP request that created the job, on every line about it from here on.
  const deps = record.requestId === null ? runner : { ...runner, log: runner.log.child({ request_id: record.requestId }) };
  const { log } = deps;
  const times = { createdAt: record.createdAt, startedAt };
  const progress = { imageSteps: 0 };
  try {
    const ending = await computeJob(deps, record, signal, startedAt, progress);
    return { kind: 'ended', ending, times };
  } catch (error) {
    const reason: unknown = signal.reason;
    if (signal.aborted && (reason === ABORT_SHUTDOWN || reason === ABORT_LOCK_LOST)) {
      log.warn({ reason, image_steps_done: progress.imageSteps }, reason === ABORT_SHUTDOWN ? 'worker stopping: handing the job back to the queue' : 'lost the job\'s lock: letting it go');
      return { kind: 'let-go', reason };
    }
    if (signal.aborted) {
      log.info({ image_steps_done: progress.imageSteps }, 'job canceled while running');
      return { kind: 'ended', ending: { status: 'canceled' }, times };
    }
    const sampling = error instanceof SamplingFailure;
    log.error({ err: sampling ? error.cause : error }, sampling ? 'job failed' : 'job failed outside the sampler');
    const ending: JobEnding = { status: 'failed', error: { type: sampling ? 'sampling_failed' : 'worker_error', message: errorLine(sampling ? error.cause : error) } };
    return { kind: 'ended', ending, times };
  }
}

/** An error thrown by the sampler itself (as opposed to Redis or the result store). */
class SamplingFailure extends Error {
  constructor(cause: unknown) {
    super(errorLine(cause), { cause });
  }
}

/** A progress or preview write that failed, which stopped the job (a worker error, not the sampler's). */
class WriteFailure extends Error {
  constructor(cause: unknown) {
    super(`could not record the job's progress or previews: ${errorLine(cause)}`, { cause });
  }
}

async function computeJob(deps: JobRunnerDeps, record: JobRecord, signal: AbortSignal, startedAt: Date, progress: { imageSteps: number }): Promise<JobEnding> {
  const { events, log } = deps;
  const { id } = record;
  if (record.cancelRequested) return { status: 'canceled' };
  const g = record.parameters;
  // Euler's count is exact; Dopri5 adapts, so its total is an estimate that the last step corrects.
  const stepsTotal = g.steps.reduce((a, b) => a + b, 0);
  deps.metrics.jobWait.observe(Math.max(0, startedAt.getTime() - record.createdAt.getTime()) / 1000);
  await events.append(id, 'started', { attempt: record.attempt, steps_total: stepsTotal });
  log.info({ attempt: record.attempt, parameters: g }, 'job started');

  const result = await sampleWithSideEffects(deps, id, g, signal, stepsTotal, progress);
  const images = await storeImages(deps, id, result, g);
  const seconds = result.elapsedMs / 1000;
  if (result.modelCalls > 0 && seconds > 0) deps.metrics.stepsPerSecond.set(result.modelCalls / seconds);
  log.info({ seconds: Number(seconds.toFixed(3)), model_calls: result.modelCalls }, 'job succeeded');
  return { status: 'succeeded', images };
}

/** The sampler, with progress and stage previews written to the record and the event stream as they come. */
async function sampleWithSideEffects(
  deps: JobRunnerDeps,
  id: string,
  g: ResolvedGeneration,
  signal: AbortSignal,
  stepsTotal: number,
  progress: { imageSteps: number },
): Promise<SampleResult> {
  const { records, store } = deps;
  const manifest = deps.modelDir.manifest;
  const stages = manifest.stages.length;
  // A write that fails stops the job at its next model call: computing on, its progress and previews
  // would go unwritten (later writes cannot overtake a lost one), and so would the rest of the job.
  const writeFailed = new AbortController();
  const sideEffects = new SideEffects((error) => {
    deps.log.error({ err: error }, 'writing the job\'s progress or previews failed: stopping the job');
    writeFailed.abort(new WriteFailure(error));
  });
  const stop = AbortSignal.any([signal, writeFailed.signal]);
  const progressReports = new ProgressReporter((reports) => sideEffects.push(() => records.reportProgresses(id, reports)), PROGRESS_INTERVAL_MS);
  try {
    const result = await sample({
      ...sampleOptionsFor(g, manifest),
      // A stopped job's call that still waits for the model is dropped, not computed for nothing.
      model: deps.model.withSignal(stop),
      signal: stop,
      onStep: (step) => {
        const done = step.stepsDone * g.num_images;
        deps.onImageSteps?.(done - progress.imageSteps);
        progress.imageSteps = done;
        const total = Math.max(step.stepsTotal ?? stepsTotal, step.stepsDone);
        const report: JobProgress = { stage: step.stage, stages, step: step.stepsDone, steps_total: total, fraction: Math.min(1, step.stepsDone / total) };
        progressReports.report(report);
      },
      onStage: (end) => {
        const side = end.resolution;
        // Encoding starts now (the pool copies the pixels at the call); storing waits its turn.
        const encoding = deps.pngs.encode(end.preview.subarray(0, side * side * 3), side, side);
        encoding.catch(() => undefined); // awaited below; a failure meanwhile is not unhandled
        const preview = { stage: end.stage, resolution: side, url: `/jobs/${id}/previews/${end.stage}` };
        // The stage's write carries the progress not written yet, ahead of its own event: the stream
        // keeps the order (this stage's progress, then its end) in one write instead of two.
        const progressBefore = progressReports.take();
        sideEffects.push(async () => {
          const png = await encoding;
          await store.put(previewKey(id, end.stage), png);
          // Small previews travel inline; big ones (the XL model's 128 and 256 px stages) only by URL,
          // so that event streams, kept for the job's whole retention, stay small in Redis.
          const inline = png.length <= INLINE_PREVIEW_BYTES ? { png_base64: png.toString('base64') } : {};
          await records.addPreview(id, preview, { ...preview, stages, ...inline }, progressBefore);
        });
      },
    }).catch((error: unknown) => {
      throw stop.aborted ? error : new SamplingFailure(error);
    });
    progressReports.flush();
    await sideEffects.drain();
    return result;
  } catch (error) {
    progressReports.flush();
    await sideEffects.drain().catch(() => undefined);
    // A cancel, shutdown or lost lock is runJob's to tell apart; otherwise a failed write says why it stopped.
    if (!signal.aborted && writeFailed.signal.aborted) throw writeFailed.signal.reason;
    throw error;
  }
}

async function storeImages(deps: Pick<JobRunnerDeps, 'store' | 'pngs' | 'modelDir'>, id: string, result: SampleResult, g: ResolvedGeneration): Promise<JobImage[]> {
  const { store } = deps;
  const pngs = await encodeGeneratedPngsWith(deps.pngs, result, g, deps.modelDir.manifest, false);
  const images: JobImage[] = [];
  for (const [index, png] of pngs.entries()) {
    await store.put(imageKey(id, index), png);
    images.push({ url: `/jobs/${id}/images/${index}`, width: result.width, height: result.height, sha256: createHash('sha256').update(png).digest('hex') });
  }
  return images;
}
