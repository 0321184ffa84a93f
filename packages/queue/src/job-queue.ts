import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { execReplies } from './job-events.ts';
import { QUEUE_NAME, type Keys } from './keys.ts';

// The BullMQ queue as the API sees it: admit a job id under the cap, put it in,
// ask where it stands, count what waits. BullMQ carries only the id; everything
// else is in the job's record (job-records.ts).
//
// Admission and BullMQ's add cannot be one script (BullMQ's add is a script of
// its own), so a job admitted under the cap holds a place in `keys.admissions`
// until its add lands. The count that admission checks is always derived, in
// the same atomic step, from BullMQ's own lists plus the places of jobs not in
// them yet: a job that ends, is canceled, fails, stalls or is handed back leaves
// nothing to undo, and a place whose holder died before its add (an API that
// crashed mid-request) lapses by itself after `reservationMs`.

export interface QueuedJobData {
  id: string;
}

export interface QueueDepth {
  waiting: number;
  active: number;
}

/**
 * Where a new job would stand: admitted (its place held) or not, and what was ahead of it. `refusedBy`:
 * which cap refused it, the queue's or its owner's; `ownerActive`: the owner's jobs queued or running
 * before this one, when an owner cap was asked for.
 */
export interface Admission extends QueueDepth {
  admitted: boolean;
  refusedBy?: 'queue' | 'owner';
  ownerActive?: number;
}

/** An owner's cap on its jobs queued or running (an API key's max_active). */
export interface OwnerCap {
  owner: string;
  maxActive: number;
}

const LISTS = ['wait', 'paused', 'prioritized', 'delayed', 'active'] as const;

/** How long an admitted job's place is held for its add to land (milliseconds a few round trips take, normally). */
const DEFAULT_RESERVATION_MS = 60_000;

// What counts against the cap, for every script here. KEYS[1..6]: BullMQ's wait, paused, prioritized,
// delayed and active, and the admissions zset; ARGV[1]: BullMQ's job key prefix (its hash is prefix..id).
// A held place whose job is in BullMQ already (its add landed, the place not yet let go) counts once, in
// BullMQ's lists. Redis's clock decides lapses, so that several API replicas agree whatever their clocks.
const COUNT = `
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local function count(now)
  local waiting = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4])
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[6], '(' .. string.format('%d', now), '+inf')) do
    if redis.call('EXISTS', ARGV[1] .. id) == 0 then waiting = waiting + 1 end
  end
  return waiting, redis.call('LLEN', KEYS[5])
end
`;

// Returns {waiting, active}.
const DEPTH = `${COUNT}
local waiting, active = count(now_ms())
return { waiting, active }
`;

// ARGV[2]: the job id, ARGV[3]: the cap, ARGV[4]: how long its place is held (ms).
// Returns {admitted (1 or 0), waiting, active}, the counts before this job.
const ADMIT = `${COUNT}
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', string.format('%d', now))
local waiting, active = count(now)
if waiting + active >= tonumber(ARGV[3]) then return { 0, waiting, active } end
redis.call('ZADD', KEYS[6], string.format('%d', now + tonumber(ARGV[4])), ARGV[2])
return { 1, waiting, active }
`;

// The per-owner count, by the same rule as the queue's: what counts is derived, not kept. KEYS[7], the
// owner's places, lists its admitted jobs; one counts while BullMQ holds its job (a job that succeeds,
// fails or is canceled is removed from BullMQ; one a crashed worker held is handed back, still the
// same one member) or while its place on the way in has not lapsed. The rest are dropped here.
// ARGV[5]: the owner's cap. Returns {1, waiting, active, owned}, or {0 (queue) / -1 (owner), ...}.
const ADMIT_OWNED = `${COUNT}
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', string.format('%d', now))
local owned = 0
local places = redis.call('ZRANGE', KEYS[7], 0, -1, 'WITHSCORES')
for i = 1, #places, 2 do
  local id = places[i]
  if redis.call('EXISTS', ARGV[1] .. id) == 1 or tonumber(places[i + 1]) > now then
    owned = owned + 1
  else
    redis.call('ZREM', KEYS[7], id)
  end
end
local waiting, active = count(now)
if owned >= tonumber(ARGV[5]) then return { -1, waiting, active, owned } end
if waiting + active >= tonumber(ARGV[3]) then return { 0, waiting, active, owned } end
local lapse = string.format('%d', now + tonumber(ARGV[4]))
redis.call('ZADD', KEYS[6], lapse, ARGV[2])
redis.call('ZADD', KEYS[7], lapse, ARGV[2])
return { 1, waiting, active, owned }
`;

export class JobQueue {
  readonly queue: Queue<QueuedJobData>;
  private readonly reads: Redis;
  /** BullMQ's own names for the lists and sets read here. */
  private readonly lists: Record<(typeof LISTS)[number], string>;
  /** The keys and first argument of every COUNT script: BullMQ's lists, the admissions, BullMQ's job key prefix. */
  private readonly countKeys: string[];
  private readonly jobKeyPrefix: string;
  private readonly admissions: string;
  private readonly keys: Keys;
  private readonly reservationMs: number;

  /**
   * `connection` is BullMQ's (it retries forever); `reads`, for depth, standing and activeIds, should
   * be a fail-fast client connection (connectRedis 'client'), so that requests asking where jobs
   * stand fail at once while Redis is away instead of waiting for it. `onError` hears the queue's
   * connection errors (BullMQ re-emits them; unheard, they would throw). `reservationMs`: how long an
   * admitted job's place is held for its add (admit) before it lapses.
   */
  constructor(
    connection: Redis,
    keys: Keys,
    onError: (error: Error) => void = () => undefined,
    reads: Redis = connection,
    { reservationMs = DEFAULT_RESERVATION_MS }: { reservationMs?: number } = {},
  ) {
    this.queue = new Queue<QueuedJobData>(QUEUE_NAME, {
      connection,
      prefix: keys.prefix,
      defaultJobOptions: {
        // The record keeps the outcome; BullMQ's copy is only the delivery.
        removeOnComplete: true,
        removeOnFail: true,
      },
    });
    this.queue.on('error', onError);
    this.reads = reads;
    const named = this.queue.keys;
    this.lists = Object.fromEntries(
      LISTS.map((name) => {
        const key = named[name];
        if (key === undefined) throw new Error(`BullMQ has no '${name}' key`);
        return [name, key];
      }),
    ) as JobQueue['lists'];
    const jobKeyPrefix = named[''];
    if (jobKeyPrefix === undefined) throw new Error("BullMQ has no job key prefix ('')");
    this.jobKeyPrefix = jobKeyPrefix;
    this.admissions = keys.admissions;
    this.keys = keys;
    this.countKeys = [...LISTS.map((name) => this.lists[name]), this.admissions];
    this.reservationMs = reservationMs;
  }

  /**
   * Admits `id` when fewer than `cap` jobs wait or run (places held for admitted jobs on their way in
   * included), holding its place until add(id) or release(id); in one script, so that no interleaving
   * of submissions, from any number of API processes, admits more than `cap`. The counts are those
   * before this job.
   */
  async admit(id: string, cap: number, ownerCap?: OwnerCap): Promise<Admission> {
    if (ownerCap === undefined) {
      const reply = (await this.reads.eval(ADMIT, this.countKeys.length, ...this.countKeys, this.jobKeyPrefix, id, cap, this.reservationMs)) as [number, number, number];
      const [admitted, waiting, active] = reply;
      return { admitted: admitted === 1, waiting, active, ...(admitted !== 1 && { refusedBy: 'queue' as const }) };
    }
    // The queue's and the owner's places are checked and taken in one script: no interleaving, from any
    // number of API processes, takes either past its cap.
    const keys = [...this.countKeys, this.keys.ownerPlaces(ownerCap.owner)];
    const reply = (await this.reads.eval(ADMIT_OWNED, keys.length, ...keys, this.jobKeyPrefix, id, cap, this.reservationMs, ownerCap.maxActive)) as [number, number, number, number];
    const [admitted, waiting, active, ownerActive] = reply;
    if (admitted === 1) return { admitted: true, waiting, active, ownerActive };
    return { admitted: false, refusedBy: admitted === -1 ? 'owner' : 'queue', waiting, active, ownerActive };
  }

  /**
   * Puts the job in the queue (workers may take it at once), and lets go of the place admit() held for
   * it; its owner's place (with `owner`) from now on counts while BullMQ holds the job.
   */
  async add(id: string, owner?: string): Promise<void> {
    await this.queue.add('generate', { id }, { jobId: id });
    // Not waited for: the place no longer counts once its job is in BullMQ, so what the caller does next
    // (answering with the job as queued) need not wait a round trip, in which a worker may take the job.
    // One not let go (Redis away this instant) lapses after reservationMs.
    void this.landed(id, owner).catch(() => undefined);
  }

  /** Lets go of the place admit() held for a job that will not be added (and of its owner's place). */
  async release(id: string, owner?: string): Promise<void> {
    const undo = this.reads.multi().zrem(this.admissions, id);
    if (owner !== undefined) undo.zrem(this.keys.ownerPlaces(owner), id);
    await undo.exec();
  }

  /** The job is in BullMQ: its queue place goes, its owner's place stops lapsing (score 0) and counts while BullMQ holds it. */
  private async landed(id: string, owner: string | undefined): Promise<void> {
    const done = this.reads.multi().zrem(this.admissions, id);
    // XX: only a place admit() took (an owner without a cap has none).
    if (owner !== undefined) done.zadd(this.keys.ownerPlaces(owner), 'XX', 0, id);
    await done.exec();
  }

  /** Removes a job that no worker has taken yet; false when it is running or gone. */
  async removeWaiting(id: string): Promise<boolean> {
    // remove() answers 1 for a job that does not exist too, and takes an active one whose lock expired.
    const state = await this.queue.getJobState(id);
    if (state !== 'waiting' && state !== 'prioritized' && state !== 'delayed') return false;
    // A worker that takes it meanwhile holds its lock, and remove() refuses (0) a locked job.
    return (await this.queue.remove(id)) === 1;
  }

  /**
   * Where a waiting job stands (1 = next), the ids of up to `limit` jobs ahead of it (nearest
   * first) and of up to `limit` behind it (the next to start after it first); null when it is not
   * waiting. BullMQ pushes new jobs on the left of its wait list and workers take from the right, so
   * this is one LPOS and two LRANGEs, whatever the queue's length.
   */
  async standing(id: string, limit: number): Promise<{ position: number; ahead: string[]; behind: string[] } | null> {
    // One transaction: a worker taking a job between the two reads would skew the position.
    const { wait } = this.lists;
    const replies = await this.reads.multi().lpos(wait, id).llen(wait).exec();
    const index = replies?.[0]?.[1] as number | null | undefined;
    const length = replies?.[1]?.[1] as number | undefined;
    if (index === null || index === undefined || length === undefined) return null;
    const position = length - index;
    if (limit <= 0) return { position, ahead: [], behind: [] };
    const reads = this.reads.multi().lrange(wait, index + 1, index + limit);
    // (At index 0 nothing is behind it; LRANGE 0 -1 would be the whole list.)
    if (index > 0) reads.lrange(wait, Math.max(0, index - limit), index - 1);
    const [ahead, behind = []] = execReplies(await reads.exec()) as string[][];
    return { position, ahead: ahead ?? [], behind: behind.reverse() };
  }

  /** The ids of up to `limit` waiting jobs, the next to start first. */
  async next(limit: number): Promise<string[]> {
    if (limit <= 0) return [];
    return (await this.reads.lrange(this.lists.wait, -limit, -1)).reverse();
  }

  /** The ids of up to `limit` waiting jobs, the last queued first (those nearest a job queued now). */
  async newest(limit: number): Promise<string[]> {
    if (limit <= 0) return [];
    return this.reads.lrange(this.lists.wait, 0, limit - 1);
  }

  /** Ids of the jobs workers are running. */
  async activeIds(): Promise<string[]> {
    return this.reads.lrange(this.lists.active, 0, -1);
  }

  /**
   * Jobs waiting (including delayed and prioritized ones, and admitted ones on their way in) and running:
   * what admit() counts against the cap, on `reads`.
   */
  async depth(): Promise<QueueDepth> {
    const [waiting, active] = (await this.reads.eval(DEPTH, this.countKeys.length, ...this.countKeys, this.jobKeyPrefix)) as [number, number];
    return { waiting, active };
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
