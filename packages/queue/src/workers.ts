import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Keys } from './keys.ts';

// Worker heartbeats: each worker keeps a short-lived key alive that says which
// model it serves, whether it is loaded, on which device and how fast it has
// been. The API's /readyz, /models and ETAs read them; a worker that dies
// simply stops renewing its key.

export const WorkerHeartbeat = z.object({
  worker_id: z.string(),
  state: z.enum(['loading', 'ready', 'stopping']),
  model: z.object({
    name: z.string(),
    resolution: z.int(),
    stages: z.array(z.int()),
    classes: z.int(),
    weights_sha256: z.string(),
  }),
  provider: z.string(),
  /** The GPU (ORT_DEVICE_ID) the worker runs on with a GPU provider; absent from workers older than it. */
  device_id: z.int().optional(),
  /** Jobs it runs at once (MAX_CONCURRENT_JOBS); absent from workers older than it. */
  concurrency: z.int().optional(),
  /** Its own measured seconds per (image x step) (eta.ts), null before it has run a job. */
  seconds_per_image_step: z.number().nullable().optional(),
  pid: z.int(),
  hostname: z.string(),
  started_at: z.iso.datetime(),
  sent_at: z.iso.datetime(),
});
export type WorkerHeartbeat = z.infer<typeof WorkerHeartbeat>;

export async function sendHeartbeat(redis: Redis, keys: Keys, heartbeat: WorkerHeartbeat, ttlSeconds: number): Promise<void> {
  await redis.set(keys.worker(heartbeat.worker_id), JSON.stringify(heartbeat), 'EX', Math.max(1, Math.ceil(ttlSeconds)));
}

export async function clearHeartbeat(redis: Redis, keys: Keys, workerId: string): Promise<void> {
  await redis.del(keys.worker(workerId));
}

/** Every worker whose heartbeat has not expired. */
export async function liveWorkers(redis: Redis, keys: Keys): Promise<WorkerHeartbeat[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', keys.workerPattern, 'COUNT', 100);
    cursor = next;
    found.push(...batch);
  } while (cursor !== '0');
  if (found.length === 0) return [];
  const values = await redis.mget(...found);
  return values.flatMap((value) => {
    const parsed = value === null ? null : WorkerHeartbeat.safeParse(JSON.parse(value));
    return parsed?.success ? [parsed.data] : [];
  });
}

/** A worker that takes jobs (loading or ready: a stopping one takes no new ones), as the ETA's pool counts it. */
export function takesJobs(worker: WorkerHeartbeat): boolean {
  return worker.state !== 'stopping';
}
