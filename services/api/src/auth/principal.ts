import type { FastifyInstance } from 'fastify';

// Who sent a request, as the routes see it. With AUTH=off there is one anonymous tenant and every
// request's principal is null; with AUTH=on the authentication hook sets it from the request's API
// key before any route runs. Routes scope what they touch by it (jobs, idempotency keys, webhook
// secrets): the key's name, never the key itself, is what they store and log.

export interface Principal {
  /** The API key's name, unique per deployment: the owner of the jobs it creates. */
  keyName: string;
  /** Admin keys may also list and cancel every job. */
  admin: boolean;
  /** The key's stored limits (null: none): requests a minute, and jobs queued or running at once. */
  ratePerMinute?: number | null;
  maxActive?: number | null;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** The scope of what a request owns: its key's name, or '' for the one tenant of AUTH=off. */
export function scopeOf(principal: Principal | null): string {
  return principal?.keyName ?? '';
}

export function decoratePrincipal(app: FastifyInstance): void {
  app.decorateRequest('principal', null);
}
