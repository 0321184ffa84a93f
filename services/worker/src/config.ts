import { availableParallelism, hostname } from 'node:os';
import { DEFAULT_MODEL_DIR } from '@pixelflow/formats';
import { checkResultsEnv, ResultsEnv } from '@pixelflow/results';
import { CommonEnv, intVar, parseEnv } from '@pixelflow/schemas';
import { z } from 'zod';

// The worker's environment variables (documented in docs/operators/running.md's
// configuration table). Times are in milliseconds where BullMQ takes them.

const WorkerEnv = CommonEnv.extend({
  MODEL_DIR: z.string().min(1).default(DEFAULT_MODEL_DIR),
  ORT_PROVIDER: z.enum(['cpu', 'cuda'], { error: 'must be cpu or cuda' }).default('cpu'),
  ORT_DEVICE_ID: intVar(0, 64, 0),
  /** With ORT_PROVIDER=cuda: serve on the CPU (logged as a warning) instead of failing when CUDA cannot start. */
  ORT_CPU_FALLBACK: z.enum(['true', 'false'], { error: 'must be true or false' }).default('false').transform((v) => v === 'true'),
  /** Threads inside one onnxruntime operator; 0 = one per physical core. */
  ORT_THREADS: intVar(0, 1024, 0),
  /** Jobs this worker runs at once; their model calls share onnxruntime calls (continuous batching). */
  MAX_CONCURRENT_JOBS: intVar(1, 256, 8),
  /** Images per onnxruntime call at most (a job's own call is never split, so one may exceed it). */
  MAX_BATCH: intVar(1, 1024, 16),
  /**
   * Rows x height x width per onnxruntime call at most, or 'auto' (8192 on the CPU: 8 rows of
   * 32 px, 2 of 64 px, past which a row costs more inside a batch than alone on the CPUs we
   * measured; no limit with CUDA) or 'none'.
   */
  MAX_BATCH_PIXELS: z
    .string()
    .default('auto')
    .refine((v) => v === 'auto' || v === 'none' || (/^\d+$/.test(v) && Number(v) >= 1), { error: "must be 'auto', 'none' or a positive integer" }),
  /**
   * Batch sizes calls are padded up to, comma-separated, or 'auto' (powers of two up to MAX_BATCH
   * with CUDA, where each new input shape costs a cuDNN algorithm search; none on the CPU, where
   * padding only costs time) or 'none'.
   */
  BATCH_BUCKETS: z
    .string()
    .default('auto')
    .refine((v) => v === 'auto' || v === 'none' || /^\d+(,\d+)*$/.test(v), { error: "must be 'auto', 'none' or batch sizes such as 1,2,4,8" }),
  /** How long a job's BullMQ lock lasts without renewal; a dead worker's job is retried after it. */
  LOCK_DURATION_MS: intVar(1000, 3_600_000, 30_000),
  STALLED_INTERVAL_MS: intVar(500, 3_600_000, 15_000),
  HEARTBEAT_INTERVAL_MS: intVar(200, 60_000, 5_000),
  /** On SIGTERM, how long the current job may take to finish before it is handed back to the queue. */
  SHUTDOWN_GRACE_MS: intVar(0, 3_600_000, 20_000),
  /** Port of the worker's own /metrics (0 = a free port; the log says which). */
  WORKER_METRICS_PORT: intVar(0, 65535, 9464),
  WORKER_METRICS_HOST: z.string().min(1).default('0.0.0.0'),
  /** Run each stage resolution once before reporting ready (first CUDA calls per shape are slow). */
  WARMUP: z.enum(['true', 'false'], { error: 'must be true or false' }).default('true').transform((v) => v === 'true'),
  /**
   * Expiry of the maintenance lock (expiry sweeps run in the one worker holding it): how long sweeps
   * pause at most after their holder dies; the holder renews it every third of this.
   */
  MAINTENANCE_LOCK_MS: intVar(1000, 3_600_000, 30_000),
  WORKER_ID: z.string().regex(/^[A-Za-z0-9_.-]+$/, { error: "must be letters, digits, '_', '.' or '-'" }).optional(),
})
  .extend(ResultsEnv.shape)
  .check(checkResultsEnv);

export type WorkerConfig = z.output<typeof WorkerEnv> & { WORKER_ID: string };

/** CPU default of MAX_BATCH_PIXELS: see bench:throughput's batch-scaling tables in the README's Performance section. */
const CPU_MAX_BATCH_PIXELS = 8 * 32 * 32;

/** The rows x height x width limit per call MAX_BATCH_PIXELS asks for, for `provider`; null for none. */
export function batchPixelLimit(config: Pick<WorkerConfig, 'MAX_BATCH_PIXELS' | 'ORT_PROVIDER'>): number | null {
  if (config.MAX_BATCH_PIXELS === 'none') return null;
  if (config.MAX_BATCH_PIXELS === 'auto') return config.ORT_PROVIDER === 'cuda' ? null : CPU_MAX_BATCH_PIXELS;
  return Number(config.MAX_BATCH_PIXELS);
}

/** The padding buckets BATCH_BUCKETS asks for, for `provider`; empty when calls are not padded. */
export function batchBuckets(config: Pick<WorkerConfig, 'BATCH_BUCKETS' | 'MAX_BATCH' | 'ORT_PROVIDER'>): number[] {
  if (config.BATCH_BUCKETS === 'none' || (config.BATCH_BUCKETS === 'auto' && config.ORT_PROVIDER !== 'cuda')) return [];
  if (config.BATCH_BUCKETS === 'auto') {
    const sizes: number[] = [];
    for (let size = 1; size < config.MAX_BATCH; size *= 2) sizes.push(size);
    return [...sizes, config.MAX_BATCH];
  }
  return [...new Set(config.BATCH_BUCKETS.split(',').map(Number))].filter((n) => n > 0).sort((a, b) => a - b);
}

/**
 * ORT_THREADS for a worker that shares its machine with the API and Redis (`pnpm start`): every
 * CPU but one. On the 2-core machine we measured, onnxruntime on both cores lost its lead to
 * stragglers as soon as the API, Redis and the worker's own event loop had work during its calls:
 * 8 concurrent jobs ran at 0.81x the sequential rate with 2 threads and 1.38x with 1 (README).
 */
export function sharedMachineOrtThreads(cpus: number = availableParallelism()): number {
  return Math.max(1, cpus - 1);
}

/** ORT_THREADS as `env` sets it, or sharedMachineOrtThreads() where it does not. */
export function ortThreadsOnSharedMachine(env: Record<string, string | undefined> = process.env): string {
  return env['ORT_THREADS'] ?? String(sharedMachineOrtThreads());
}

export function loadWorkerConfig(env: Record<string, string | undefined> = process.env): WorkerConfig {
  const parsed = parseEnv(WorkerEnv, env);
  return { ...parsed, WORKER_ID: parsed.WORKER_ID ?? `${hostname().replace(/[^A-Za-z0-9_.-]/g, '-')}-${process.pid}` };
}
