import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson, claimOrWait, idempotencyKeyOf, IDEMPOTENCY_KEY_PATTERN, keys as makeKeys, RedisIdempotencyStore, requestFingerprint } from '../src/index.ts';

// The idempotency records against the real Redis on 127.0.0.1:6379 (REDIS_URL overrides), under a
// key prefix of this file's own, deleted afterwards.

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const keys = makeKeys(`pftest-idem-${randomBytes(4).toString('hex')}`);
const answer = { status: 202, location: '/jobs/j1', body: '{"id":"j1"}' };

let redis: Redis;
let store: RedisIdempotencyStore;

beforeAll(() => {
  redis = new Redis(REDIS_URL);
  store = new RedisIdempotencyStore(redis, keys);
});
afterAll(async () => {
  const stale = await redis.keys(`${keys.prefix}:*`);
  if (stale.length > 0) await redis.del(...stale);
  redis.disconnect();
});

describe('the request fingerprint', () => {
  it('is one for every key order and spacing of one JSON value, and differs when a value does', () => {
    const a = JSON.parse('{"class_label": 3, "steps": [2, 2], "nested": {"b": 1, "a": 2}}') as unknown;
    const b = JSON.parse('{"nested":{"a":2,"b":1},"steps":[2,2],"class_label":3}') as unknown;
    expect(canonicalJson(a)).toBe('{"class_label":3,"nested":{"a":2,"b":1},"steps":[2,2]}');
    expect(requestFingerprint(a)).toBe(requestFingerprint(b));
    expect(requestFingerprint({ class_label: 4 })).not.toBe(requestFingerprint({ class_label: 3 }));
    // Array order is part of the value.
    expect(requestFingerprint({ steps: [1, 2] })).not.toBe(requestFingerprint({ steps: [2, 1] }));
  });
});

describe('the key header', () => {
  it('takes 1 to 255 printable ASCII characters, and an sf-string names the key inside its quotes', () => {
    expect(IDEMPOTENCY_KEY_PATTERN.test('8e03978e-40d5-43e8-bc93-6894a57f9324')).toBe(true);
    expect(IDEMPOTENCY_KEY_PATTERN.test('x'.repeat(255))).toBe(true);
    expect(IDEMPOTENCY_KEY_PATTERN.test('x'.repeat(256))).toBe(false);
    expect(IDEMPOTENCY_KEY_PATTERN.test('')).toBe(false);
    expect(IDEMPOTENCY_KEY_PATTERN.test('caf\u00e9')).toBe(false);
    expect(IDEMPOTENCY_KEY_PATTERN.test('a\tb')).toBe(false);
    expect(idempotencyKeyOf('"abc"')).toBe('abc');
    expect(idempotencyKeyOf('abc')).toBe('abc');
  });
});

describe('RedisIdempotencyStore', () => {
  it('lets one request claim a key, replays its answer to the same body and refuses another body', async () => {
    const first = await store.claim('', 'k1', 'f1');
    expect(first.outcome).toBe('claimed');
    expect(await store.claim('', 'k1', 'f1')).toEqual({ outcome: 'in-progress' });
    expect(await store.claim('', 'k1', 'f2')).toEqual({ outcome: 'mismatch' });
    expect(await store.complete('', 'k1', (first as { token: string }).token, answer)).toBe(true);
    expect(await store.claim('', 'k1', 'f1')).toEqual({ outcome: 'replay', answer });
    expect(await store.claim('', 'k1', 'f2')).toEqual({ outcome: 'mismatch' });
    // The record lives 24 h from its answer.
    const ttl = await redis.ttl(keys.idempotency('', 'k1'));
    expect(ttl).toBeGreaterThan(24 * 3600 - 60);
    expect(ttl).toBeLessThanOrEqual(24 * 3600);
  });

  it('forgets a released claim (a refusal does not poison the key) and never releases a completed one', async () => {
    const first = (await store.claim('', 'k2', 'f1')) as { token: string };
    await store.release('', 'k2', first.token);
    // Free again, even for another body.
    const second = (await store.claim('', 'k2', 'f2')) as { outcome: string; token: string };
    expect(second.outcome).toBe('claimed');
    // An old token can neither complete nor release the new claim.
    expect(await store.complete('', 'k2', first.token, answer)).toBe(false);
    await store.release('', 'k2', first.token);
    expect(await store.claim('', 'k2', 'f2')).toEqual({ outcome: 'in-progress' });
    expect(await store.complete('', 'k2', second.token, answer)).toBe(true);
    await store.release('', 'k2', second.token);
    expect(await store.claim('', 'k2', 'f2')).toEqual({ outcome: 'replay', answer });
  });

  it('keeps scopes apart, including scopes and keys that contain the separator', async () => {
    expect(keys.idempotency('a:b', 'c')).not.toBe(keys.idempotency('a', 'b:c'));
    expect((await store.claim('alice', 'shared', 'f1')).outcome).toBe('claimed');
    expect((await store.claim('bob', 'shared', 'f2')).outcome).toBe('claimed');
    expect((await store.claim('', 'shared', 'f3')).outcome).toBe('claimed');
  });

  it('frees a claim whose creator never answered once its pending time passes', async () => {
    const short = new RedisIdempotencyStore(redis, keys, { pendingMs: 200 });
    expect((await short.claim('', 'k3', 'f1')).outcome).toBe('claimed');
    expect((await short.claim('', 'k3', 'f1')).outcome).toBe('in-progress');
    // Redis expires the key itself; 2 s is ten times the pending time, for a slow machine.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect((await short.claim('', 'k3', 'f1')).outcome).toBe('claimed');
  });

  it('lets exactly one of 50 concurrent claims win', async () => {
    const claims = await Promise.all(Array.from({ length: 50 }, () => store.claim('', 'k4', 'f1')));
    expect(claims.filter((claim) => claim.outcome === 'claimed')).toHaveLength(1);
    expect(claims.filter((claim) => claim.outcome === 'in-progress')).toHaveLength(49);
  });

  it('claimOrWait replays the answer that arrives while it waits', async () => {
    const first = (await store.claim('', 'k5', 'f1')) as { token: string };
    setTimeout(() => void store.complete('', 'k5', first.token, answer), 100);
    expect(await claimOrWait(store, '', 'k5', 'f1', { waitMs: 10_000, pollMs: 20 })).toEqual({ outcome: 'replay', answer });
    // And gives up as in-progress when no answer comes in time.
    expect((await store.claim('', 'k6', 'f1')).outcome).toBe('claimed');
    expect(await claimOrWait(store, '', 'k6', 'f1', { waitMs: 100, pollMs: 20 })).toEqual({ outcome: 'in-progress' });
  });
});
