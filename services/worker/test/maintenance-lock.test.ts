import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys as makeKeys } from '@pixelflow/queue';

// The maintenance role across real processes: four competitors (the worker's ExpirySweeper, each in
// a process of its own, see support/sweeper-process.ts) on the real Redis under a prefix of this
// file's own, sweeping a backlog of expired jobs. The holder is SIGKILLed (another takes over once
// the lock has expired, not before), the next one is stopped with SIGTERM (it frees the lock: the
// next takes over at once), and the last is paused with SIGSTOP past the lock's expiry (another takes
// over; the paused one, resumed, gives up the role after the one deletion it had in flight).
// Through all of it, the deletions of two holders never interleave.

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPT = fileURLToPath(new URL('./support/sweeper-process.ts', import.meta.url));
/**
 * The lock's expiry. Holders renew every third of it and before every deletion, so a killed holder's
 * lock lapses between 2/3 of it and all of it after the kill; the bounds below leave a second either
 * side for a loaded 2-core machine.
 */
const LOCK_MS = 4000;
const DELETE_MS = 10;
const BACKLOG = 20_000;

interface Deletion {
  name: string;
  jobId: string;
  at: number;
}

const prefix = `pftest-lock-${randomBytes(4).toString('hex')}`;
const keys = makeKeys(prefix);
const deletionsKey = `${prefix}:test:deletions`;
let redis: Redis;
const children = new Map<string, ChildProcess>();
const logs = new Map<string, string>();

function startCompetitor(name: string): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT], {
    cwd: REPO,
    env: { ...process.env, REDIS_URL, REDIS_PREFIX: prefix, NAME: name, LOCK_MS: String(LOCK_MS), SWEEP_INTERVAL_MS: '100', DELETE_MS: String(DELETE_MS) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.set(name, child);
  logs.set(name, '');
  child.stderr?.on('data', (chunk: Buffer) => logs.set(name, (logs.get(name) ?? '') + chunk.toString()));
  return new Promise((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`${name} exited (${code}) before competing: ${logs.get(name)}`)));
  });
}

async function deletions(): Promise<Deletion[]> {
  return (await redis.lrange(deletionsKey, 0, -1)).map((line) => JSON.parse(line) as Deletion);
}

/** The owner name in the lock now (owners are `<name>:<random>`), or null. */
async function holderName(): Promise<string | null> {
  const owner = await redis.get(keys.maintenanceLock);
  return owner === null ? null : owner.slice(0, owner.lastIndexOf(':'));
}

/** The first deletion by someone other than `others` at or after `since`, waiting up to `timeoutMs`. */
async function firstDeletionBy(notBy: readonly string[], since: number, timeoutMs = 20_000): Promise<Deletion> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = (await deletions()).find((d) => !notBy.includes(d.name) && d.at >= since);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`nobody but ${notBy.join(', ')} deleted within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Names in the order they deleted, runs of one name collapsed: a handover is a change of name. */
function holders(list: readonly Deletion[]): string[] {
  return [...list].sort((a, b) => a.at - b.at).flatMap((d, i, all) => (i > 0 && all[i - 1]?.name === d.name ? [] : [d.name]));
}

beforeAll(async () => {
  redis = new Redis(REDIS_URL);
  // A backlog of expired jobs (no records: deleting them is what a sweep does to any expired id).
  for (let start = 0; start < BACKLOG; start += 1000) {
    const members = Array.from({ length: 1000 }, (_, i) => [0, `job-${start + i}`]).flat();
    await redis.zadd(keys.expiry, ...members);
  }
  await Promise.all(['a', 'b', 'c', 'd'].map(startCompetitor));
});

afterAll(async () => {
  for (const child of children.values()) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  }
  const stale = await redis.keys(`${prefix}:*`);
  if (stale.length > 0) await redis.del(...stale);
  redis.disconnect();
});

describe('the maintenance role across processes', () => {
  it('is held by one process, taken over after the lock expires when it is killed, at once when it stops, and given up after a pause', async () => {
    // One holder sweeps; the other three only compete.
    await firstDeletionBy([], 0);
    await sleep(1000);
    const first = await holderName();
    expect(first).not.toBeNull();
    expect(new Set((await deletions()).map((d) => d.name))).toEqual(new Set([first]));

    // SIGKILL: nothing frees the lock; the next holder starts only once it has expired.
    const killedAt = Date.now();
    children.get(first as string)?.kill('SIGKILL');
    const second = await firstDeletionBy([first as string], 0);
    expect(second.at - killedAt).toBeGreaterThanOrEqual((LOCK_MS * 2) / 3 - 1000);
    expect(second.at - killedAt).toBeLessThanOrEqual(LOCK_MS + LOCK_MS / 3 + 5000);
    expect(await holderName()).toBe(second.name);

    // SIGTERM: the holder frees the lock as it stops, and another takes the role at its next round
    // (every third of the expiry), well before the lock would have expired.
    await sleep(500);
    const stoppedAt = Date.now();
    const stopping = children.get(second.name) as ChildProcess;
    stopping.kill('SIGTERM');
    await once(stopping, 'exit');
    const third = await firstDeletionBy([first as string, second.name], stoppedAt);
    expect(third.at - stoppedAt).toBeLessThan(LOCK_MS);

    // SIGSTOP past the expiry: the last competitor takes over; the paused one, resumed, finds the
    // lock another's at its next deletion and gives up (at most the deletion it was in has run).
    await sleep(500);
    const paused = children.get(third.name) as ChildProcess;
    paused.kill('SIGSTOP');
    const fourth = await firstDeletionBy([first as string, second.name, third.name], 0);
    paused.kill('SIGCONT');
    await sleep(2000);
    const afterResume = (await deletions()).filter((d) => d.name === third.name && d.at > fourth.at);
    expect(afterResume.length).toBeLessThanOrEqual(1);
    expect(await holderName()).toBe(fourth.name);
    expect(logs.get(third.name)).toContain('maintenance role given up');

    // Every handover is one of the three above: the deletions of two holders never interleave (the
    // paused one's deletion in flight, if any, is the one exception the role documents).
    const order = holders(await deletions());
    expect(order.slice(0, 4)).toEqual([first, second.name, third.name, fourth.name]);
    expect(order.length === 4 || (afterResume.length === 1 && order.length <= 6)).toBe(true);
  });
});
