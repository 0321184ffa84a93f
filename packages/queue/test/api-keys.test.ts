import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeyNameTaken, ApiKeys, connectRedis, hashApiKey, keys as makeKeys, webhookSecretOf, type Keys } from '../src/index.ts';

// The key store against the real Redis (REDIS_URL overrides), each test under a prefix of its own.

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
let redis: Redis;
const prefixes: Keys[] = [];

beforeAll(() => {
  redis = connectRedis(REDIS_URL, 'client', 'api-keys-test');
});

afterAll(async () => {
  for (const keys of prefixes) {
    const stale = await redis.keys(`${keys.prefix}:*`);
    if (stale.length > 0) await redis.del(...stale);
  }
  redis.disconnect();
});

function fresh(now?: () => Date): { keys: Keys; store: ApiKeys } {
  const keys = makeKeys(`pftest-keys-${randomBytes(4).toString('hex')}`);
  prefixes.push(keys);
  return { keys, store: new ApiKeys(redis, keys, now) };
}

const plain = { admin: false, ratePerMinute: null, maxActive: null };

describe('ApiKeys', () => {
  it('issues a random key and a webhook secret, and stores neither the key nor anything it can be read back from but its hash', async () => {
    const { keys, store } = fresh();
    const created = await store.create({ name: 'app-1', admin: false, ratePerMinute: 120, maxActive: 4 });
    expect(created.key).toMatch(/^pfk_[A-Za-z0-9_-]{43}$/);
    expect(created.webhookSecret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    expect(Buffer.from(created.webhookSecret.slice(6), 'base64')).toHaveLength(24);
    const other = await store.create({ name: 'app-2', ...plain });
    expect(other.key).not.toBe(created.key);
    // Nothing in Redis holds the key itself.
    const stored = await redis.keys(`${keys.prefix}:*`);
    for (const name of stored) {
      const dump = JSON.stringify(await redis.hgetall(name));
      expect(name + dump).not.toContain(created.key);
    }
    expect(stored).toContain(keys.apiKey(hashApiKey(created.key)));
  });

  it('authenticates an issued key with its name, admin flag and limits, and nothing else', async () => {
    const { store } = fresh();
    const { key } = await store.create({ name: 'ops', admin: true, ratePerMinute: 60, maxActive: 2 });
    expect(await store.authenticate(key)).toMatchObject({ name: 'ops', admin: true, ratePerMinute: 60, maxActive: 2 });
    const unknown = `pfk_${randomBytes(32).toString('base64url')}`;
    expect(await store.authenticate(unknown)).toBeNull();
    for (const garbage of ['', 'pfk_', key.slice(0, -1), `${key}x`, key.toUpperCase(), 'Bearer', 'x'.repeat(10_000)]) {
      expect(await store.authenticate(garbage)).toBeNull();
    }
  });

  it('refuses a name in use, even when two creations race', async () => {
    const { store } = fresh();
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => store.create({ name: 'same', ...plain })));
    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
    for (const result of results.filter((r) => r.status === 'rejected')) expect((result as PromiseRejectedResult).reason).toBeInstanceOf(ApiKeyNameTaken);
    expect(await store.list()).toHaveLength(1);
  });

  it('refuses names that are not plain', async () => {
    const { store } = fresh();
    for (const name of ['', 'a b', 'x'.repeat(65), '-lead', 'naïve', 'a:b']) await expect(store.create({ name, ...plain })).rejects.toThrow(/letters, digits/);
  });

  it('lists keys by name without their secrets, and revokes by name at once', async () => {
    const { keys, store } = fresh();
    const b = await store.create({ name: 'b', ...plain });
    const a = await store.create({ name: 'a', admin: true, ratePerMinute: 10, maxActive: null });
    const listed = await store.list();
    expect(listed.map((info) => info.name)).toEqual(['a', 'b']);
    expect(JSON.stringify(listed)).not.toContain('whsec_');
    expect(await webhookSecretOf(redis, keys, 'b')).toBe(b.webhookSecret);
    expect(await store.revoke('b')).toBe(true);
    expect(await store.revoke('b')).toBe(false);
    expect(await store.authenticate(b.key)).toBeNull();
    expect(await webhookSecretOf(redis, keys, 'b')).toBeNull();
    expect(await store.authenticate(a.key)).not.toBeNull();
    // The name is free again.
    await store.create({ name: 'b', ...plain });
  });

  it('writes last_used_at at most once a minute', async () => {
    let now = new Date('2026-01-01T00:00:00Z');
    const { keys, store } = fresh(() => now);
    const { key } = await store.create({ name: 'k', ...plain });
    const lastUsed = async () => redis.hget(keys.apiKey(hashApiKey(key)), 'last_used_at');
    await store.authenticate(key);
    await expect.poll(lastUsed, { timeout: 10_000 }).toBe('2026-01-01T00:00:00.000Z');
    now = new Date('2026-01-01T00:00:59Z');
    await store.authenticate(key);
    await redis.ping(); // the touch, had there been one, is ahead of this on the connection
    expect(await lastUsed()).toBe('2026-01-01T00:00:00.000Z');
    now = new Date('2026-01-01T00:01:00Z');
    await store.authenticate(key);
    await expect.poll(lastUsed, { timeout: 10_000 }).toBe('2026-01-01T00:01:00.000Z');
    expect((await store.list())[0]?.lastUsedAt?.toISOString()).toBe('2026-01-01T00:01:00.000Z');
  });

  it('leaves no record behind when a key is revoked while its last use is being written', async () => {
    const { keys, store } = fresh();
    const { key } = await store.create({ name: 'gone', ...plain });
    const authenticated = store.authenticate(key);
    await store.revoke('gone');
    await authenticated;
    await redis.ping();
    expect(await redis.exists(keys.apiKey(hashApiKey(key)))).toBe(0);
  });
});
