import { createHash, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Keys } from './keys.ts';

// Idempotent submission (the IETF draft "The Idempotency-Key HTTP Header Field"): one Redis hash
// per (scope, key) remembers the request's fingerprint and, once a job exists, the first answer.
// Claiming is one Lua script, atomic on the server, so of any number of concurrent requests with
// one key exactly one becomes the creator; the others see "in progress" until it finishes. Only a
// created job is remembered: a creator that was refused (queue full, Redis trouble) releases its
// claim, and the next request with the key tries afresh.

/** How long a key remembers its first answer: the 24 h the API documents. */
export const IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60;
/** How long a claim lasts without an answer: a creator that died mid-request frees its key after this. */
export const IDEMPOTENCY_PENDING_MS = 30_000;

/** The first answer to a request, replayed verbatim to every repeat. */
export interface StoredAnswer {
  status: number;
  location: string;
  /** The JSON text of the body as first sent. */
  body: string;
}

export type Claim =
  /** Nobody had the key: this request creates the job, then completes or releases the claim with `token`. */
  | { outcome: 'claimed'; token: string }
  /** The key's job exists: answer with the stored first answer. */
  | { outcome: 'replay'; answer: StoredAnswer }
  /** The key was used with another body. */
  | { outcome: 'mismatch' }
  /** Another request with the key and the same body is creating its job right now. */
  | { outcome: 'in-progress' };

export interface IdempotencyStore {
  claim(scope: string, key: string, fingerprint: string): Promise<Claim>;
  /** Remembers the answer for IDEMPOTENCY_TTL_SECONDS; false when the claim had lapsed (and was maybe taken). */
  complete(scope: string, key: string, token: string, answer: StoredAnswer): Promise<boolean>;
  /** Forgets a claim that created nothing, so that the key is not poisoned by a refusal. */
  release(scope: string, key: string, token: string): Promise<void>;
}

/** JSON with object keys sorted at every level: one text for every spelling of one value. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([name, item]) => `${JSON.stringify(name)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** "The same body": the sha256 of the parsed request's canonical JSON (key order and whitespace do not count). */
export function requestFingerprint(body: unknown): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex');
}

/** 1 to 255 printable ASCII characters (space included). */
export const IDEMPOTENCY_KEY_PATTERN = /^[\x20-\x7e]{1,255}$/;

/**
 * The key a header value names. The draft writes it as a Structured Field string ("..."); most
 * clients send it bare. Both spellings name one key: the quotes of an sf-string are not part of it.
 */
export function idempotencyKeyOf(header: string): string {
  return /^"[^"\\]+"$/.test(header) ? header.slice(1, -1) : header;
}

/** HSET a pending claim if the key is free; otherwise say what the key holds. */
const CLAIM = `
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('HSET', KEYS[1], 'state', 'pending', 'fingerprint', ARGV[1], 'token', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'claimed'}
end
if redis.call('HGET', KEYS[1], 'fingerprint') ~= ARGV[1] then return {'mismatch'} end
if state == 'pending' then return {'in-progress'} end
return {'replay', redis.call('HGET', KEYS[1], 'status'), redis.call('HGET', KEYS[1], 'location'), redis.call('HGET', KEYS[1], 'body')}
`;
/** Store the answer and the 24 h expiry, only for the claim's own token. */
const COMPLETE = `
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= 'pending' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'done', 'status', ARGV[2], 'location', ARGV[3], 'body', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
`;
/** Delete a pending claim, only for its own token (never a completed record or another's claim). */
const RELEASE = `
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] and redis.call('HGET', KEYS[1], 'state') == 'pending' then return redis.call('DEL', KEYS[1]) end
return 0
`;

export class RedisIdempotencyStore implements IdempotencyStore {
  private readonly redis: Redis;
  private readonly keys: Keys;
  private readonly ttlSeconds: number;
  private readonly pendingMs: number;

  constructor(redis: Redis, keys: Keys, { ttlSeconds = IDEMPOTENCY_TTL_SECONDS, pendingMs = IDEMPOTENCY_PENDING_MS } = {}) {
    this.redis = redis;
    this.keys = keys;
    this.ttlSeconds = ttlSeconds;
    this.pendingMs = pendingMs;
  }

  async claim(scope: string, key: string, fingerprint: string): Promise<Claim> {
    const token = randomUUID();
    const reply = (await this.redis.eval(CLAIM, 1, this.keys.idempotency(scope, key), fingerprint, token, this.pendingMs)) as string[];
    switch (reply[0]) {
      case 'claimed':
        return { outcome: 'claimed', token };
      case 'replay':
        return { outcome: 'replay', answer: { status: Number(reply[1]), location: reply[2] ?? '', body: reply[3] ?? '' } };
      case 'mismatch':
        return { outcome: 'mismatch' };
      default:
        return { outcome: 'in-progress' };
    }
  }

  async complete(scope: string, key: string, token: string, answer: StoredAnswer): Promise<boolean> {
    const done = await this.redis.eval(COMPLETE, 1, this.keys.idempotency(scope, key), token, answer.status, answer.location, answer.body, this.ttlSeconds);
    return Number(done) === 1;
  }

  async release(scope: string, key: string, token: string): Promise<void> {
    await this.redis.eval(RELEASE, 1, this.keys.idempotency(scope, key), token);
  }
}

/**
 * Claims the key, and while another request is creating its job, asks again every `pollMs` for up to
 * `waitMs`: the usual outcome is that request's answer, replayed. Still in progress after that, the
 * caller answers 409 with Retry-After.
 */
export async function claimOrWait(store: IdempotencyStore, scope: string, key: string, fingerprint: string, { waitMs = 2000, pollMs = 50 } = {}): Promise<Claim> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const claim = await store.claim(scope, key, fingerprint);
    if (claim.outcome !== 'in-progress' || Date.now() >= deadline) return claim;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
