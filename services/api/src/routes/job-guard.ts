import type { FastifyInstance } from 'fastify';
import { JobId } from '@pixelflow/schemas';
import { jobNotFound, sendProblem } from '../problems.ts';

/**
 * For the routes of a job plugin (Fastify encapsulation keeps it to them): an `:id` that POST
 * /jobs cannot have issued is answered 404 like any other unknown job, before its schema would
 * call it a 400 and before it reaches a Redis key (`<id>:events` is the job's event stream). A
 * client holding a stale or mistyped id gets the same answer either way.
 */
export function guardJobRoutes(app: FastifyInstance): void {
  app.addHook('onRequest', async (request, reply) => {
    const { id } = request.params as { id?: string };
    if (id !== undefined && !JobId.safeParse(id).success) {
      return sendProblem(reply, jobNotFound(id, request.url.split('?')[0]));
    }
  });
}
