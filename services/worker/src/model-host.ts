import type { ModelDir } from '@pixelflow/formats';
import { OnnxModel } from '@pixelflow/onnx';
import { BatchingModel, type VelocityModel } from '@pixelflow/sampler';
import type { Logger } from 'pino';
import { batchBuckets, batchPixelLimit, type WorkerConfig } from './config.ts';
import type { WorkerMetrics } from './metrics.ts';

// The model as this worker serves it: the onnxruntime session, warmed up at
// the batch sizes it will see, behind a batcher that merges the calls of the
// jobs running at once into one session call (continuous batching), with
// every session call timed and every batch counted for metrics.

export interface ModelHost {
  /** What jobs call (each through withSignal, so a canceled job's waiting call is dropped): the batcher in front of the timed session. */
  readonly model: BatchingModel;
  /** The execution provider that serves ('cpu' after a CUDA fallback). */
  readonly provider: string;
  dispose(): Promise<void>;
}

/**
 * Batch sizes warm-up runs at each stage resolution: every padding bucket when calls are padded;
 * otherwise the sizes of a lone job: n (a stage without guidance) or 2n (both CFG halves), for
 * single-image jobs and jobs of the default size.
 */
export function warmupBatchSizes(imagesPerJob: number, buckets: readonly number[]): number[] {
  if (buckets.length > 0) return [...buckets];
  return [...new Set([1, 2, imagesPerJob, 2 * imagesPerJob])].sort((a, b) => a - b);
}

export async function hostModel(modelDir: ModelDir, config: WorkerConfig, metrics: WorkerMetrics, log: Logger): Promise<ModelHost> {
  const manifest = modelDir.manifest;
  const buckets = batchBuckets(config);
  const loadStarted = performance.now();
  const session = await OnnxModel.load(modelDir, {
    provider: config.ORT_PROVIDER,
    deviceId: config.ORT_DEVICE_ID,
    fallbackToCpu: config.ORT_CPU_FALLBACK,
    ...(config.ORT_THREADS > 0 && { intraOpNumThreads: config.ORT_THREADS }),
  });
  try {
    if (session.fellBack) log.warn({ reason: session.fallbackReason }, 'CUDA unavailable: serving on the CPU (ORT_CPU_FALLBACK=true)');
    if (config.WARMUP) await warmUp(session, modelDir, warmupBatchSizes(manifest.defaults.num_images, buckets), log);
    log.info({ model: manifest.name, provider: session.provider, seconds: seconds(loadStarted) }, 'model loaded');
  } catch (error) {
    await session.dispose().catch(() => undefined);
    throw error;
  }
  // Session calls are timed for pixelflow_model_call_seconds from here on; warm-up's are not.
  const maxPixels = batchPixelLimit(config);
  const batcher = new BatchingModel(metrics.timeModelCalls(session), {
    maxBatch: config.MAX_BATCH,
    ...(maxPixels !== null && { maxPixels }),
    ...(buckets.length > 0 && { batchSizes: buckets }),
    onBatch: (batch) => {
      metrics.batchImages.observe({ resolution: batch.resolution }, batch.images);
      metrics.batchJobs.observe(batch.requests);
      metrics.paddedImages.inc(batch.padded - batch.images);
    },
  });
  log.info({ max_concurrent_jobs: config.MAX_CONCURRENT_JOBS, max_batch: config.MAX_BATCH, max_batch_pixels: maxPixels, buckets }, 'batching the calls of concurrent jobs');
  return {
    model: batcher,
    provider: session.provider,
    dispose: () => session.dispose(),
  };
}

/**
 * One call per stage resolution and batch size: on CUDA the first call at each input shape is slow
 * (cuDNN searches its algorithms, and onnxruntime-node cannot turn that off), so it is paid before
 * the worker says it is ready, not in a user's job.
 */
async function warmUp(model: VelocityModel, modelDir: ModelDir, batches: number[], log: Logger): Promise<void> {
  const manifest = modelDir.manifest;
  const started = performance.now();
  const channels = manifest.architecture.in_channels;
  for (const stage of manifest.stages) {
    const side = stage.resolution;
    for (const batch of batches) {
      await model.predict(
        new Float32Array(batch * channels * side * side),
        [batch, channels, side, side],
        new Float32Array(batch).fill(stage.timestep_first),
        new BigInt64Array(batch).fill(BigInt(manifest.classes.null_label)),
      );
    }
  }
  log.info({ batches, seconds: seconds(started) }, 'warmed up every stage resolution at the batch sizes jobs use');
}

function seconds(since: number): number {
  return Number(((performance.now() - since) / 1000).toFixed(2));
}
