import type { ChainableCommander, Redis } from 'ioredis';
import { JOB_EVENT_NAMES, type JobEventName, type JobEventPayload } from '@pixelflow/schemas';
import type { Keys } from './keys.ts';

// Each job's events live in a Redis stream of their own, so a client that
// reconnects with Last-Event-ID gets exactly what it missed (stream entry ids
// are the SSE ids) and a stream opened on a finished job replays it. Appending
// also publishes the job id on one channel: API processes listen there with a
// single subscriber connection, however many SSE clients they serve.

export interface StoredEvent<N extends JobEventName = JobEventName> {
  /** Stream entry id: increasing, usable as the SSE `id`. */
  id: string;
  name: N;
  data: JobEventPayload<N>;
}

const STREAM_ID = /^(\d+)-(\d+)$/;
/** Redis reads both parts of a stream id as unsigned 64-bit integers and refuses larger ones. */
const PART_MAX = 2n ** 64n - 1n;

/** The two parts of `text` when it is a stream id Redis accepts (digits only: no sign, no spaces); null otherwise. */
function parseEventId(text: string): [bigint, bigint] | null {
  const match = STREAM_ID.exec(text);
  if (!match) return null;
  const ms = BigInt(match[1] as string);
  const seq = BigInt(match[2] as string);
  return ms <= PART_MAX && seq <= PART_MAX ? [ms, seq] : null;
}

/** Whether `text` is a stream id Redis accepts, and so one a reader may resume after. */
export function isEventId(text: string): boolean {
  return parseEventId(text) !== null;
}

/** Whether no stream id can follow `id`: Redis refuses a range that starts after the largest. */
function isLastPossibleId(id: string): boolean {
  const parts = parseEventId(id);
  return parts !== null && parts[0] === PART_MAX && parts[1] === PART_MAX;
}

function isEventName(name: string): name is JobEventName {
  return (JOB_EVENT_NAMES as string[]).includes(name);
}

/**
 * Adds events `name` to a transaction, one per payload in order: an XADD each to the job's stream,
 * then one PUBLISH, so that followers wake once for all of them. Shared so that writes that go with
 * events (JobRecords.reportProgresses) stay one round trip.
 */
export function addEvents<N extends JobEventName>(multi: ChainableCommander, keys: Keys, jobId: string, name: N, payloads: readonly JobEventPayload<N>[]): ChainableCommander {
  return announce(addUnannounced(multi, keys, jobId, name, payloads), keys, jobId);
}

/** Ends a transaction's events of job `jobId` with the one PUBLISH that wakes its followers. */
export function announce(multi: ChainableCommander, keys: Keys, jobId: string): ChainableCommander {
  return multi.publish(keys.eventsChannel, jobId);
}

/** As addEvents without the PUBLISH: for events followed by others in the same transaction, which announces them all. */
export function addUnannounced<N extends JobEventName>(multi: ChainableCommander, keys: Keys, jobId: string, name: N, payloads: readonly JobEventPayload<N>[]): ChainableCommander {
  for (const data of payloads) multi.xadd(keys.events(jobId), '*', 'name', name, 'data', JSON.stringify(data));
  return multi;
}

/** The replies of an exec(), throwing the first command error (ioredis reports them per command). */
export function execReplies(results: [Error | null, unknown][] | null): unknown[] {
  if (!results) throw new Error('transaction aborted');
  return results.map(([error, reply]) => {
    if (error) throw error;
    return reply;
  });
}

export class JobEvents {
  private readonly redis: Redis;
  private readonly keys: Keys;

  constructor(redis: Redis, keys: Keys) {
    this.redis = redis;
    this.keys = keys;
  }

  async append<N extends JobEventName>(jobId: string, name: N, data: JobEventPayload<N>): Promise<string> {
    const [id] = execReplies(await addEvents(this.redis.multi(), this.keys, jobId, name, [data]).exec());
    return id as string;
  }

  /** Events after `afterId` (all when undefined), oldest first. */
  async read(jobId: string, afterId?: string, count = 1000): Promise<StoredEvent[]> {
    if (afterId !== undefined && isLastPossibleId(afterId)) return [];
    const start = afterId === undefined ? '-' : `(${afterId}`;
    const entries = await this.redis.xrange(this.keys.events(jobId), start, '+', 'COUNT', count);
    const events: StoredEvent[] = [];
    for (const [id, fields] of entries) {
      const record: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) record[fields[i] as string] = fields[i + 1] as string;
      const name = record['name'] ?? '';
      if (!isEventName(name)) continue;
      events.push({ id, name, data: JSON.parse(record['data'] ?? 'null') as JobEventPayload<typeof name> });
    }
    return events;
  }
}

type Listener = () => void;

/** What an event stream needs from the hub: to be woken when its job has new events. */
export interface JobEventNotifier {
  /** Calls `listener` whenever `jobId` gets events; returns the unsubscribe function. */
  follow(jobId: string, listener: () => void): () => void;
}

/**
 * One subscriber connection per process that wakes whoever follows a job when
 * it has new events. Listeners then read the stream themselves, so a missed
 * notification costs latency (until the follower's next poll), never an event.
 */
export class JobEventHub implements JobEventNotifier {
  private readonly listeners = new Map<string, Set<Listener>>();
  private ready: Promise<unknown> | null = null;

  private readonly subscriber: Redis;
  private readonly keys: Keys;

  constructor(subscriber: Redis, keys: Keys) {
    this.subscriber = subscriber;
    this.keys = keys;
    subscriber.on('message', (channel: string, jobId: string) => {
      if (channel !== keys.eventsChannel) return;
      for (const listener of this.listeners.get(jobId) ?? []) listener();
    });
  }

  async start(): Promise<void> {
    this.ready ??= this.subscriber.subscribe(this.keys.eventsChannel);
    await this.ready;
  }

  /** Calls `listener` whenever `jobId` gets events; returns the unsubscribe function. */
  follow(jobId: string, listener: Listener): () => void {
    let set = this.listeners.get(jobId);
    if (!set) this.listeners.set(jobId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(jobId);
    };
  }

  /** Jobs followed right now (for leak checks and metrics). */
  get followed(): number {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }
}
