import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { isEventId, type StoredEvent } from '@pixelflow/queue';
import { FINAL_EVENTS, isFinished, JobId } from '@pixelflow/schemas';
import { z } from 'zod';
import type { ApiContext } from '../context.ts';
import { JOB_ROUTE_PROBLEMS, jobEventStream, problems } from '../openapi/responses.ts';
import { jobNotFound, problem, sendProblem } from '../problems.ts';
import { guardJobRoutes } from './job-guard.ts';

// GET /jobs/:id/events: the job's events as Server-Sent Events, for
// EventSource. Events come from the job's Redis stream, so a reconnecting
// client (Last-Event-ID) gets exactly what it missed, a stream opened on a
// finished job replays it and closes, and one resumed at or after a finished
// job's final event closes at once. New events are pushed by the process's
// one subscriber connection; each heartbeat also re-reads the stream, so a
// lost notification only delays an event. Streams end when the job ends, the
// client leaves, or the server closes.

const RETRY_MS = 2000;
const EVENT_ID_RULE = 'must be an id from this stream, e.g. 1700000000000-0';
/** Events per stream read; a full batch is followed by the next read at once. */
const READ_BATCH = 1000;
const LastEventId = z.string().max(64, { error: EVENT_ID_RULE }).optional();

function format(event: StoredEvent): string {
  return `id: ${event.id}\nevent: ${event.name}\ndata: ${JSON.stringify(event.data)}\n\n`;
}

export function eventRoutes(ctx: ApiContext) {
  return async function (app: FastifyInstance): Promise<void> {
    guardJobRoutes(app);
    app.withTypeProvider<ZodTypeProvider>().get(
      '/jobs/:id/events',
      {
        schema: {
          operationId: 'streamJobEvents',
          summary: 'The job’s progress as Server-Sent Events',
          description:
            'Events: queued {position}, started {attempt, steps_total}, progress {stage, stages, step, steps_total, fraction} after every model call, stage {stage, stages, resolution, url, png_base64 (when at most 16 KiB)} at the end of each stage, then one of succeeded {images}, failed {error}, canceled {reason}, after which the stream ends. Every event has an id; reconnect with Last-Event-ID (or ?last_event_id=) to get only what was missed. Comment lines are heartbeats.',
          tags: ['jobs'],
          params: z.object({ id: JobId }),
          querystring: z.object({ last_event_id: LastEventId.meta({ description: 'For clients that cannot send the Last-Event-ID header' }) }),
          headers: z.object({ 'last-event-id': LastEventId.meta({ description: 'Resume after this event: only later events are sent' }) }).loose(),
          response: {
            200: jobEventStream('The job’s events, from the first (or after Last-Event-ID) to the one that ends it'),
            ...problems('validation', ...JOB_ROUTE_PROBLEMS),
          },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const lastEventId = request.headers['last-event-id'] ?? request.query.last_event_id;
        if (lastEventId !== undefined && !isEventId(lastEventId)) {
          return sendProblem(reply, problem('validation', `Last-Event-ID ${JSON.stringify(lastEventId)} is not an event id of this API`, { errors: [{ path: 'last-event-id', message: EVENT_ID_RULE }] }));
        }
        if (!(await app.jobs.exists(id))) {
          return sendProblem(reply, jobNotFound(id, `/jobs/${id}/events`));
        }

        // Hijacked, the reply no longer sends what hooks set on it (X-Request-Id, and any header a
        // hook adds later): the stream's head takes those along explicitly.
        const hookHeaders = reply.getHeaders() as OutgoingHttpHeaders;
        reply.hijack();
        const raw = reply.raw;
        raw.writeHead(200, {
          ...hookHeaders,
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache, no-transform',
          connection: 'keep-alive',
          'x-accel-buffering': 'no',
        });
        raw.write(`retry: ${RETRY_MS}\n\n`);
        ctx.metrics.sseStreams.inc();
        const started = performance.now();

        let cursor = lastEventId;
        let closed = false;
        let pumping: Promise<void> | null = null;
        let again = false;

        const close = (): void => {
          if (closed) return;
          closed = true;
          clearInterval(heartbeat);
          unfollow();
          ctx.streams.delete(close);
          ctx.metrics.sseStreams.dec();
          ctx.metrics.httpDuration.observe({ method: 'GET', route: '/jobs/:id/events', status_code: '200' }, (performance.now() - started) / 1000);
          if (!raw.writableEnded) raw.end();
        };

        // Set once the job was seen finished before a read: that read found every event it will
        // ever have after the cursor (its final status is written after its final event, in one script).
        let complete = false;
        const pumpOnce = async (): Promise<void> => {
          for (;;) {
            const events = await app.jobs.events(id, cursor, READ_BATCH);
            if (closed) return;
            // One write for what one read found: a packet and a client wake-up per batch, not per event.
            let text = '';
            let final = false;
            for (const event of events) {
              text += format(event);
              cursor = event.id;
              if (FINAL_EVENTS.includes(event.name)) {
                final = true;
                break;
              }
            }
            if (text !== '') raw.write(text);
            if (final || (complete && events.length < READ_BATCH)) {
              close();
              return;
            }
            // A full batch may not be all (a long job replayed): waiting for the next wake-up
            // would stall a heartbeat period per batch.
            if (events.length === READ_BATCH) continue;
            if (events.length > 0) return;
            // Nothing after the cursor. A job that has ended (its final event at or before the
            // cursor: a client resuming from it, as EventSource does after the stream closes) will
            // send nothing more; one that expired meanwhile neither.
            const record = await app.jobs.record(id);
            if (closed) return;
            if (!record) {
              close();
              return;
            }
            if (!isFinished(record.status)) return;
            // Ended since that read, perhaps: one more read takes its last events.
            complete = true;
          }
        };
        // One read at a time, in order; a wake-up during a read runs one more.
        const pump = (): void => {
          // While Redis is away a read would only fail (and log) each beat: the heartbeats keep the
          // client, and the first beat after Redis is back reads what came meanwhile.
          if (closed || !app.jobs.connected()) return;
          if (pumping) {
            again = true;
            return;
          }
          pumping = pumpOnce()
            .catch((error: unknown) => {
              request.log.warn({ err: error, job_id: id }, 'reading job events failed');
            })
            .finally(() => {
              pumping = null;
              if (again) {
                again = false;
                pump();
              }
            });
        };

        const unfollow = app.eventHub.follow(id, pump);
        const heartbeat = setInterval(() => {
          if (!closed) raw.write(': heartbeat\n\n');
          pump();
        }, ctx.config.SSE_HEARTBEAT_MS);
        ctx.streams.add(close);
        raw.on('close', close);
        // A client that left during the awaits above closed the response before anyone listened.
        if (raw.destroyed) close();
        else pump();
      },
    );
  };
}
