import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Keys } from './keys.ts';

// API keys, kept in Redis so that every API replica sees a new or revoked key on its next request.
// A key is 32 random bytes: it is shown once, when it is made, and stored only as its SHA-256.
// A slow password hash (bcrypt, scrypt) defends guessable secrets against brute force; 256 random
// bits cannot be guessed whatever the hash, and a fast one lets every request be checked with one
// Redis read and a microsecond of hashing. Each key also gets a webhook signing secret, kept in
// clear because webhooks are signed with it (HMAC), and shown once beside the key.

const KEY_PREFIX = 'pfk_';
/** `pfk_` and 32 bytes in base64url: what create() issues, and so all authenticate() looks up. */
const KEY_SHAPE = /^pfk_[A-Za-z0-9_-]{43}$/;
/** last_used_at is written at most this often per key: one write a minute, not one per request. */
const LAST_USED_RESOLUTION_MS = 60_000;

/** What a key is called: it owns the key's jobs and appears in logs and metrics labels, so it is short and plain. */
export const ApiKeyName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, { error: 'must be 1 to 64 letters, digits, _ . or -, starting with a letter or digit' });

export const ApiKeyLimits = z.object({
  /** Requests a minute; null: no per-key rate limit. */
  ratePerMinute: z.int().min(1).nullable(),
  /** Jobs queued or running at once; null: only the global QUEUE_CAP. */
  maxActive: z.int().min(1).nullable(),
});
export type ApiKeyLimits = z.output<typeof ApiKeyLimits>;

export const NewApiKey = ApiKeyLimits.extend({ name: ApiKeyName, admin: z.boolean() });
export type NewApiKey = z.output<typeof NewApiKey>;

/** A key as listed: everything but the key (never stored) and the webhook secret. */
export const ApiKeyInfo = NewApiKey.extend({ createdAt: z.date(), lastUsedAt: z.date().nullable() });
export type ApiKeyInfo = z.output<typeof ApiKeyInfo>;

/** What create() returns: the only time the key and its webhook secret are shown. */
export interface CreatedApiKey {
  key: string;
  webhookSecret: string;
  info: ApiKeyInfo;
}

export class ApiKeyNameTaken extends Error {
  constructor(name: string) {
    super(`an API key named ${JSON.stringify(name)} already exists`);
    this.name = 'ApiKeyNameTaken';
  }
}

// KEYS[1] names hash, KEYS[2] the key's hash. ARGV[1] name, ARGV[2] key hash, then field, value pairs.
const CREATE = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
return 1
`;

// KEYS[1] names hash. ARGV[1] name, ARGV[2] the key-hash prefix of record keys. Returns 1 when revoked.
const REVOKE = `
local hash = redis.call('HGET', KEYS[1], ARGV[1])
if not hash then return 0 end
redis.call('DEL', ARGV[2] .. hash)
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
`;

// Only a key that still exists: a revocation between the read and this write must not leave a stub.
const TOUCH = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'last_used_at', ARGV[1])
return 1
`;

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** Whether `text` has the shape of an issued key (no Redis read for anything else). */
export function looksLikeApiKey(text: string): boolean {
  return KEY_SHAPE.test(text);
}

function date(text: string | undefined): Date | null {
  return text === undefined || text === '' ? null : new Date(text);
}

function limit(text: string | undefined): number | null {
  return text === undefined || text === '' ? null : Number(text);
}

function infoFrom(fields: Record<string, string>): ApiKeyInfo | null {
  const name = fields['name'];
  if (name === undefined) return null;
  return {
    name,
    admin: fields['admin'] === '1',
    ratePerMinute: limit(fields['rate_per_minute']),
    maxActive: limit(fields['max_active']),
    createdAt: date(fields['created_at']) ?? new Date(0),
    lastUsedAt: date(fields['last_used_at']),
  };
}

export class ApiKeys {
  private readonly redis: Redis;
  private readonly keys: Keys;
  private readonly now: () => Date;

  constructor(redis: Redis, keys: Keys, now: () => Date = () => new Date()) {
    this.redis = redis;
    this.keys = keys;
    this.now = now;
  }

  /** A new key; throws ApiKeyNameTaken when the name is in use. */
  async create(request: NewApiKey): Promise<CreatedApiKey> {
    const { name, admin, ratePerMinute, maxActive } = NewApiKey.parse(request);
    const key = KEY_PREFIX + randomBytes(32).toString('base64url');
    const webhookSecret = `whsec_${randomBytes(24).toString('base64')}`;
    const keyHash = hashApiKey(key);
    const createdAt = this.now();
    const fields = {
      name,
      admin: admin ? '1' : '0',
      created_at: createdAt.toISOString(),
      rate_per_minute: ratePerMinute === null ? '' : String(ratePerMinute),
      max_active: maxActive === null ? '' : String(maxActive),
      webhook_secret: webhookSecret,
    };
    const created = await this.redis.eval(CREATE, 2, this.keys.apiKeyNames, this.keys.apiKey(keyHash), name, keyHash, ...Object.entries(fields).flat());
    if (Number(created) !== 1) throw new ApiKeyNameTaken(name);
    return { key, webhookSecret, info: { name, admin, ratePerMinute, maxActive, createdAt, lastUsedAt: null } };
  }

  /** Every key, by name. */
  async list(): Promise<ApiKeyInfo[]> {
    const names = await this.redis.hgetall(this.keys.apiKeyNames);
    const pipeline = this.redis.pipeline();
    for (const keyHash of Object.values(names)) pipeline.hgetall(this.keys.apiKey(keyHash));
    const replies = (await pipeline.exec()) ?? [];
    return replies
      .map(([error, fields]) => {
        if (error) throw error;
        return infoFrom(fields as Record<string, string>);
      })
      .filter((info): info is ApiKeyInfo => info !== null)
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Deletes the key named `name`: its next request, on any replica, is refused. False when there is none. */
  async revoke(name: string): Promise<boolean> {
    return Number(await this.redis.eval(REVOKE, 1, this.keys.apiKeyNames, name, this.keys.apiKey(''))) === 1;
  }

  /**
   * The key's record, or null for a key that was never issued or has been revoked: one Redis read
   * (HGETALL), plus a write at most once a minute to keep last_used_at.
   */
  async authenticate(key: string): Promise<ApiKeyInfo | null> {
    if (!looksLikeApiKey(key)) return null;
    const recordKey = this.keys.apiKey(hashApiKey(key));
    const info = infoFrom(await this.redis.hgetall(recordKey));
    if (!info) return null;
    const now = this.now();
    if (info.lastUsedAt === null || now.getTime() - info.lastUsedAt.getTime() >= LAST_USED_RESOLUTION_MS) {
      // Not awaited: the request need not wait for bookkeeping, and a failed write only leaves an older time.
      this.redis.eval(TOUCH, 1, recordKey, now.toISOString()).catch(() => undefined);
    }
    return info;
  }
}

/** The webhook signing secret of the key named `keyName`; null when there is no such key (revoked). */
export async function webhookSecretOf(redis: Redis, keys: Keys, keyName: string): Promise<string | null> {
  const keyHash = await redis.hget(keys.apiKeyNames, keyName);
  if (keyHash === null) return null;
  return redis.hget(keys.apiKey(keyHash), 'webhook_secret');
}
