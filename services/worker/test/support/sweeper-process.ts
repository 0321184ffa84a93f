import { setTimeout as sleep } from 'node:timers/promises';
import { connectRedis, JobRecords, keys as makeKeys } from '@pixelflow/queue';
import { pino } from 'pino';
import { ExpirySweeper } from '../../src/expiry-sweeper.ts';

// One competitor for the maintenance role, as a process of its own: the worker's real ExpirySweeper
// on a real Redis, with a result store whose deleteJob takes DELETE_MS and records who deleted what
// and when (RPUSH to `<prefix>:test:deletions`), so that a test can kill, pause and stop holders and
// read who swept when. Configured by environment: REDIS_URL, REDIS_PREFIX, NAME, LOCK_MS,
// SWEEP_INTERVAL_MS, DELETE_MS. Prints "competing" once it has started; SIGTERM stops it as the
// worker stops (the role is freed).

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const name = env('NAME');
const keys = makeKeys(env('REDIS_PREFIX'));
const redis = connectRedis(env('REDIS_URL'), 'worker', `sweeper-${name}`);
const deleteMs = Number(env('DELETE_MS'));
const log = pino({ level: 'info', base: { name } }, pino.destination(2));

const recordingStore = {
  async deleteJob(jobId: string): Promise<void> {
    await redis.rpush(`${keys.prefix}:test:deletions`, JSON.stringify({ name, jobId, at: Date.now() }));
    await sleep(deleteMs);
  },
};

const sweeper = new ExpirySweeper({
  redis,
  keys,
  workerId: name,
  records: new JobRecords(redis, keys),
  store: recordingStore,
  log,
  lockMs: Number(env('LOCK_MS')),
  intervalMs: Number(env('SWEEP_INTERVAL_MS')),
});
sweeper.start();
process.stdout.write('competing\n');
process.once('SIGTERM', () => {
  void sweeper.stop().then(() => {
    redis.disconnect();
  });
});
