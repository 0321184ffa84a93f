import { createHash } from 'node:crypto';
import type { JobEvents, JobRecords } from '@pixelflow/queue';
import { imageKey, previewKey, type ResultStore } from '@pixelflow/results';
import { encodeGeneratedPngs, encodePng, type ModelDir } from '@pixelflow/formats';
import { sample, sampleOptionsFor, type VelocityModel } from '@pixelflow/sampler';
import type { JobImage, JobProgress } from '@pixelflow/schemas';
import type { Logger } from 'pino';
import type { WorkerMetrics } from './metrics.ts';

// One job, from its record to its images: take it (unless it was canceled
// meanwhile), run the cascaded sampler with progress and stage previews going
// to the job's record and event stream, store the PNGs atomically, record the
// outcome. The sampler computes in onnxruntime's worker thread, so this event
// loop stays free to renew the BullMQ lock and to hear cancel requests.

const INLINE_PREVIEW_BYTES = 16 * 1024;

/** Why a job's signal was aborted. */
export const ABORT_CANCELED = 'canceled';
export const ABORT_SHUTDOWN = 'shutdown';

export class HandBack extends Error {
  override name = 'HandBack';
}

export interface JobRunnerDeps {
  records: JobRecords;
  events: JobEvents;
  store: ResultStore;
  model: VelocityModel;
  modelDir: ModelDir;
  retentionSeconds: number;
  log: Logger;
  metrics: WorkerMetrics;
  /** Called with seconds per (step x image) when a job succeeds, for ETAs. */
  onThroughput?: (secondsPerImageStep: number) => Promise<void> | void;
}

/** Serialises the async side effects of the sampler's synchronous callbacks, in order. */
class Sequence {
  private tail: Promise<void> = Promise.resolve();
  private failure: unknown = null;

  push(task: () => Promise<unknown>): void {
    this.tail = this.tail.then(async () => {
      if (this.failure !== null) return;
      try {
        await task();
      } catch (error) {
        this.failure = error;
      }
    });
  }

  async drain(): Promise<void> {
    await this.tail;
    if (this.failure !== null) throw this.failure;
  }
}

/**
 * Runs job `id`. `signal` aborts with reason ABORT_CANCELED (the user canceled it: the job ends
 * canceled, keeping its previews) or ABORT_SHUTDOWN (the worker is stopping: HandBack is thrown so
 * that the caller returns the job to the queue).
 */
export async function runJob(deps: JobRunnerDeps, id: string, signal: AbortSignal): Promise<void> {
  const { records, events, store, modelDir, log } = deps;
  const manifest = modelDir.manifest;
  const startedAt = new Date();
  const status = await records.start(id, startedAt);
  if (status !== 'running') {
    log.info({ status }, status === null ? 'job record is gone; skipping' : `job is ${status}; skipping`);
    return;
  }
  const record = await records.get(id);
  if (!record) return;
  const finish = async (outcome: Parameters<JobRecords['finish']>[1]): Promise<void> => {
    const now = new Date();
    const final = await records.finish(id, outcome, now, deps.retentionSeconds);
    if (final === outcome.status) deps.metrics.jobsFinished.inc({ status: outcome.status });
    deps.metrics.jobRun.observe((now.getTime() - startedAt.getTime()) / 1000);
  };
  if (record.cancelRequested) {
    await finish({ status: 'canceled' });
    return;
  }

  const g = record.parameters;
  const stages = manifest.stages.length;
  // Euler's count is exact; Dopri5 adapts, so its total is an estimate that the last step corrects.
  const stepsTotal = g.steps.reduce((a, b) => a + b, 0);
  deps.metrics.jobWait.observe(Math.max(0, startedAt.getTime() - record.createdAt.getTime()) / 1000);
  await events.append(id, 'started', { attempt: record.attempt, steps_total: stepsTotal });
  log.info({ attempt: record.attempt, parameters: g }, 'job started');

  const sideEffects = new Sequence();
  let stepsDone = 0;
  try {
    const result = await sample({
      ...sampleOptionsFor(g, manifest),
      model: deps.model,
      signal,
      onStep: (step) => {
        stepsDone = step.stepsDone;
        const total = Math.max(step.stepsTotal ?? stepsTotal, step.stepsDone);
        const progress: JobProgress = {
          stage: step.stage,
          stages,
          step: step.stepsDone,
          steps_total: total,
          fraction: Math.min(1, step.stepsDone / total),
        };
        sideEffects.push(() => records.reportProgress(id, progress));
      },
      onStage: (end) => {
        const side = end.resolution;
        const png = encodePng(end.preview.subarray(0, side * side * 3), side, side);
        const preview = { stage: end.stage, resolution: side, url: `/jobs/${id}/previews/${end.stage}` };
        sideEffects.push(async () => {
          await store.put(previewKey(id, end.stage), png);
          await records.addPreview(id, preview);
          // Small previews travel inline; big ones (the XL model's 128 and 256 px stages) only by URL,
          // so that event streams, kept for the job's whole retention, stay small in Redis.
          const inline = png.length <= INLINE_PREVIEW_BYTES ? { png_base64: png.toString('base64') } : {};
          await events.append(id, 'stage', { ...preview, stages, ...inline });
        });
      },
    });
    await sideEffects.drain();
    const pngs = encodeGeneratedPngs(result, g, manifest, false);
    const images: JobImage[] = [];
    for (const [index, png] of pngs.entries()) {
      await store.put(imageKey(id, index), png);
      images.push({
        url: `/jobs/${id}/images/${index}`,
        width: result.width,
        height: result.height,
        sha256: createHash('sha256').update(png).digest('hex'),
      });
    }
    const seconds = result.elapsedMs / 1000;
    if (result.modelCalls > 0 && seconds > 0) {
      deps.metrics.stepsPerSecond.set(result.modelCalls / seconds);
      await deps.onThroughput?.(seconds / (result.modelCalls * g.num_images));
    }
    await finish({ status: 'succeeded', images });
    log.info({ seconds: Number(seconds.toFixed(3)), model_calls: result.modelCalls }, 'job succeeded');
  } catch (error) {
    await sideEffects.drain().catch(() => undefined);
    if (signal.aborted && signal.reason === ABORT_SHUTDOWN) {
      log.warn({ steps_done: stepsDone }, 'worker stopping: handing the job back to the queue');
      throw new HandBack('worker stopping');
    }
    if (signal.aborted) {
      await finish({ status: 'canceled' });
      log.info({ steps_done: stepsDone }, 'job canceled while running');
      return;
    }
    const message = (error as Error).message.split('\n')[0] ?? String(error);
    log.error({ err: error }, 'job failed');
    await finish({ status: 'failed', error: { type: 'sampling_failed', message } });
  }
}
