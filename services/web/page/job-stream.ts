import { ApiUnreachable, followJobEvents, type JobEvent } from '@pixelflow/client';
import { currentApiKey } from './api.ts';

// A job's Server-Sent Events for the page, through the client's event stream: a dropped
// connection is resumed with Last-Event-ID (nothing missed, nothing repeated) and 503s are waited
// out inside it. When the server cannot be reached at all, the page keeps trying, further apart;
// a job that no longer exists ends the stream (the panel's polling says why).

export type { JobEvent };

const MAX_BACKOFF_MS = 10_000;

export interface JobStreamHandlers {
  event(event: JobEvent): void;
  connection(state: 'open' | 'lost'): void;
}

export class JobStream {
  private readonly controller = new AbortController();
  private lastEventId: string | undefined;

  readonly jobId: string;
  private readonly handlers: JobStreamHandlers;

  constructor(jobId: string, handlers: JobStreamHandlers) {
    this.jobId = jobId;
    this.handlers = handlers;
    void this.run();
  }

  close(): void {
    this.controller.abort();
  }

  private async run(): Promise<void> {
    const { signal } = this.controller;
    for (let failures = 0; !signal.aborted; failures++) {
      try {
        const apiKey = currentApiKey();
        const events = followJobEvents('', this.jobId, {
          signal,
          ...(apiKey ? { apiKey } : {}),
          ...(this.lastEventId !== undefined ? { lastEventId: this.lastEventId } : {}),
          onConnection: (state) => this.handlers.connection(state),
          maxBackoffMs: MAX_BACKOFF_MS,
        });
        for await (const event of events) {
          if (signal.aborted) return;
          this.lastEventId = event.id;
          failures = 0;
          this.handlers.event(event);
        }
        return;
      } catch (error) {
        if (signal.aborted || !(error instanceof ApiUnreachable)) return;
        this.handlers.connection('lost');
        await new Promise((resolve) => setTimeout(resolve, Math.min(MAX_BACKOFF_MS, 1000 * 2 ** failures)));
      }
    }
  }
}
