import type { JobEventName, JobEventPayload } from '@pixelflow/schemas';
import { api } from './api.ts';

// A job's Server-Sent Events with resumption. The browser's EventSource reconnects by itself after a
// dropped connection and sends Last-Event-ID, so nothing is missed; when it gives up (the API
// answered an error, e.g. 503 while Redis is away) we reconnect ourselves from the last event id.
// The stream is closed at the job's final event, before the server ends it, so that EventSource
// does not reconnect to a finished job.

const EVENT_NAMES = ['queued', 'started', 'progress', 'stage', 'succeeded', 'failed', 'canceled'] as const satisfies readonly JobEventName[];
// Every event the API can send is listened to: this fails to compile if one is added to the schema.
type Unlistened = Exclude<JobEventName, (typeof EVENT_NAMES)[number]>;
const everyEventListened: [Unlistened] extends [never] ? true : never = true;
void everyEventListened;

const FINAL: readonly JobEventName[] = ['succeeded', 'failed', 'canceled'];
const MAX_BACKOFF_MS = 10_000;

export type JobEvent = { [N in JobEventName]: { name: N; data: JobEventPayload<N> } }[JobEventName];

export interface JobStreamHandlers {
  event(event: JobEvent): void;
  connection(state: 'open' | 'lost'): void;
}

export class JobStream {
  private source: EventSource | null = null;
  private lastEventId: string | null = null;
  private retry: ReturnType<typeof setTimeout> | null = null;
  private failures = 0;
  private closed = false;

  readonly jobId: string;
  private readonly handlers: JobStreamHandlers;

  constructor(jobId: string, handlers: JobStreamHandlers) {
    this.jobId = jobId;
    this.handlers = handlers;
    this.connect();
  }

  close(): void {
    this.closed = true;
    if (this.retry !== null) clearTimeout(this.retry);
    this.source?.close();
    this.source = null;
  }

  private connect(): void {
    const source = new EventSource(api.eventsUrl(this.jobId, this.lastEventId));
    this.source = source;
    for (const name of EVENT_NAMES) {
      source.addEventListener(name, (message: MessageEvent<string>) => {
        if (this.closed) return;
        if (message.lastEventId !== '') this.lastEventId = message.lastEventId;
        if (FINAL.includes(name)) this.close();
        this.handlers.event({ name, data: JSON.parse(message.data) } as JobEvent);
      });
    }
    source.addEventListener('open', () => {
      this.failures = 0;
      this.handlers.connection('open');
    });
    source.addEventListener('error', () => {
      if (this.closed) return;
      this.handlers.connection('lost');
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        const delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** this.failures++);
        this.retry = setTimeout(() => {
          this.retry = null;
          if (!this.closed) this.connect();
        }, delay);
      }
    });
  }
}
