import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis, isEventId, JobEvents, keys as makeKeys, type Keys } from '../src/index.ts';

// Event ids as Redis reads them: each part of a stream id is an unsigned 64-bit integer, so an id
// is one exactly when Redis accepts it, and reading after the largest one is not an error. Against
// the real Redis (REDIS_URL), under a key prefix of its own that is deleted afterwards.

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const U64_MAX = (2n ** 64n - 1n).toString();

let redis: Redis;
let k: Keys;
let events: JobEvents;

beforeAll(() => {
  redis = connectRedis(REDIS_URL, 'client', 'event-ids-test');
  k = makeKeys(`pftest-${randomBytes(4).toString('hex')}`);
  events = new JobEvents(redis, k);
});

afterAll(async () => {
  const stale = await redis.keys(`${k.prefix}:*`);
  if (stale.length > 0) await redis.del(...stale);
  redis.disconnect();
});

/** What Redis says of `id` as the exclusive start of XRANGE: null when it takes it, else its error. */
async function redisRefusal(id: string): Promise<string | null> {
  try {
    await redis.xrange(k.events('nobody'), `(${id}`, '+', 'COUNT', 1);
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

describe('isEventId', () => {
  it('takes exactly the ids whose parts fit in 64 bits, as Redis does', async () => {
    const valid = ['0-0', '1-0', '1700000000000-0', `${U64_MAX}-0`, `0-${U64_MAX}`, `${U64_MAX}-1`, '00001-0'];
    const tooLarge = [`${2n ** 64n}-0`, `0-${2n ** 64n}`, '99999999999999999999-0', '1-99999999999999999999999', `${U64_MAX}0-0`];
    for (const id of valid) {
      expect(isEventId(id), id).toBe(true);
      expect(await redisRefusal(id), id).toBeNull();
    }
    for (const id of tooLarge) {
      expect(isEventId(id), id).toBe(false);
      expect(await redisRefusal(id), id).toMatch(/Invalid stream ID/);
    }
    // Forms Redis would take (strtoull's sign and spaces) but that no stream sends: refused too.
    for (const id of ['+1-0', ' 1-0', '1', '1-', '-1-0', '1-2-3', '１-0', '']) expect(isEventId(id), JSON.stringify(id)).toBe(false);
  });
});

describe('JobEvents.read', () => {
  it('after the largest id: nothing, where Redis refuses the range (nothing can follow that id)', async () => {
    await events.append('m1', 'queued', { position: 1 });
    const largest = `${U64_MAX}-${U64_MAX}`;
    expect(isEventId(largest)).toBe(true);
    expect(await redisRefusal(largest)).toMatch(/invalid start ID/);
    expect(await events.read('m1', largest)).toEqual([]);
    expect(await events.read('m1', `0${largest}`)).toEqual([]);
    expect(await events.read('m1', `${U64_MAX}-0`)).toEqual([]);
    expect((await events.read('m1', '0-0')).map((e) => e.name)).toEqual(['queued']);
  });
});
