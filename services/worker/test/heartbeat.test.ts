import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { keys as makeKeys, liveWorkers } from '@pixelflow/queue';
import { loadModelDir } from '@pixelflow/formats';
import { Heartbeat } from '../src/heartbeat.ts';
import { WorkerMetrics } from '../src/metrics.ts';

// How a worker tells operators and the API who it is, on the real Redis under a prefix of its own:
// its heartbeat names its GPU and slots and, once it has run jobs, its measured speed (for the ETAs
// of the pool of workers); its metrics name it and its GPU in pixelflow_worker_info.

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const TINY = new URL('../../../test/fixtures/tiny', import.meta.url).pathname;
const redis = new Redis(REDIS_URL);
const keys = makeKeys(`pftest-${randomBytes(4).toString('hex')}`);

afterAll(async () => {
  const stale = await redis.keys(`${keys.prefix}:*`);
  if (stale.length > 0) await redis.del(...stale);
  redis.disconnect();
});

describe('a worker names itself', () => {
  it('in its heartbeat: its GPU, its slots, and its speed once measured', async () => {
    const { manifest } = await loadModelDir(TINY);
    const beat = new Heartbeat({ redis, keys, workerId: 'gpu1', manifest, intervalMs: 60_000, log: pino({ level: 'silent' }), provider: 'cuda', concurrency: 4, deviceId: 1 });
    await beat.start();
    try {
      expect(await liveWorkers(redis, keys)).toEqual([expect.objectContaining({ worker_id: 'gpu1', provider: 'cuda', device_id: 1, concurrency: 4, seconds_per_image_step: null })]);
      beat.secondsPerImageStep = 0.012;
      await beat.beat();
      expect((await liveWorkers(redis, keys))[0]?.seconds_per_image_step).toBe(0.012);
    } finally {
      await beat.stop();
    }
    expect(await liveWorkers(redis, keys)).toEqual([]);
  });

  it('on the CPU without a device id', async () => {
    const { manifest } = await loadModelDir(TINY);
    const beat = new Heartbeat({ redis, keys, workerId: 'cpu', manifest, intervalMs: 60_000, log: pino({ level: 'silent' }), provider: 'cpu', concurrency: 8 });
    await beat.start();
    try {
      const [heartbeat] = await liveWorkers(redis, keys);
      expect(heartbeat?.worker_id).toBe('cpu');
      expect(heartbeat).not.toHaveProperty('device_id');
    } finally {
      await beat.stop();
    }
  });

  it('in pixelflow_worker_info, one series that follows the provider it got', async () => {
    const metrics = new WorkerMetrics();
    metrics.identify({ worker_id: 'gpu1', provider: 'cuda', device_id: '1', hostname: 'box' });
    metrics.identify({ worker_id: 'gpu1', provider: 'cpu', device_id: '1', hostname: 'box' });
    const series = (await metrics.registry.metrics()).split('\n').filter((line) => line.startsWith('pixelflow_worker_info{'));
    expect(series).toEqual(['pixelflow_worker_info{worker_id="gpu1",provider="cpu",device_id="1",hostname="box"} 1']);
  });
});
