import type { FastifyInstance, onRequestAsyncHookHandler } from 'fastify';
import { JobId } from '@pixelflow/schemas';
import { mayAccessJob } from '../auth/ownership.ts';
import { jobNotFound, sendProblem, sendRedisUnavailable } from '../problems.ts';

/**
 * An onRequest hook for routes that need Redis: while the job store's connection is down they
 * answer 503 with Retry-After at once instead of waiting for it (a command would wait for the next
 * reconnection attempt, seconds apart during an outage, and BullMQ's connection for good). Health,
 * docs, metrics and unknown routes do not take it: they answer without Redis.
 */
export function requireRedis(app: FastifyInstance): onRequestAsyncHookHandler {
  return async (request, reply) => {
    if (!app.jobs.connected()) return sendRedisUnavailable(reply, request.url);
  };
}

/**
 * For the routes of a job plugin (Fastify encapsulation keeps it to them): an `:id` that POST
 * /jobs cannot have issued is answered 404 like any other unknown job, before its schema would
 * call it a 400 and before it reaches a Redis key (`<id>:events` is the job's event stream). A
 * client holding a stale or mistyped id gets the same answer either way. Then requireRedis, then
 * ownership: with AUTH=on, a job another (non-admin) key created is a 404 too, for every route of
 * the job (record, events, images, previews, cancel), before the route reads anything else.
 */
export function guardJobRoutes(app: FastifyInstance): void {
  app.addHook('onRequest', async (request, reply) => {
    const { id } = request.params as { id?: string };
    if (id !== undefined && !JobId.safeParse(id).success) {
      return sendProblem(reply, jobNotFound(id, request.url.split('?')[0]));
    }
  });
  app.addHook('onRequest', requireRedis(app));
  app.addHook('onRequest', async (request, reply) => {
    const { id } = request.params as { id?: string };
    const { principal } = request;
    if (id === undefined || principal === null || principal.admin) return;
    const record = await app.jobs.record(id);
    if (!record || !mayAccessJob(principal, record.owner)) return sendProblem(reply, jobNotFound(id, request.url.split('?')[0]));
  });
}
