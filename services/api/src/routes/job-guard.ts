import type { FastifyInstance } from 'fastify';
import { JobId } from '@pixelflow/schemas';
import { jobNotFound, sendProblem, sendRedisUnavailable } from '../problems.ts';

/**
 * For the routes of a job plugin (Fastify encapsulation keeps it to them): an `:id` that POST
 * /jobs cannot have issued is answered 404 like any other unknown job, before its schema would
 * call it a 400 and before it reaches a Redis key (`<id>:events` is the job's event stream). A
 * client holding a stale or mistyped id gets the same answer either way.
 * While Redis is away they answer 503 at once instead of waiting for it (the BullMQ connection
 * would wait forever); health, docs, metrics and unknown routes are not concerned.
 */
export function guardJobRoutes(app: FastifyInstance): void {
  app.addHook('onRequest', async (request, reply) => {
    const { id } = request.params as { id?: string };
    if (id !== undefined && !JobId.safeParse(id).success) {
      return sendProblem(reply, jobNotFound(id, request.url.split('?')[0]));
    }
    if (!app.jobs.connected()) return sendRedisUnavailable(reply, request.url);
  });
}
