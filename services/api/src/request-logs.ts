import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';

// Fastify's per-request log lines, with probes and scrapes at debug: load balancers and Prometheus
// ask for /healthz, /readyz and /metrics every few seconds, and at info their lines would bury the
// requests people make. Everything else logs as Fastify does.

/** Health, readiness and metrics requests. */
const PROBE_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

export function isProbe(url: string): boolean {
  return PROBE_PATHS.has(url.split('?')[0] as string);
}

export class ProbesAtDebug extends LogController {
  override incomingRequest(request: FastifyRequest, reply: FastifyReply, metadata?: Record<string, unknown>): void {
    if (isProbe(request.url)) request.log.debug({ req: request }, 'incoming request');
    else super.incomingRequest(request, reply, metadata);
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply, metadata?: Record<string, unknown>): void {
    if (isProbe(request.url) && !error) reply.log.debug({ res: reply, responseTime: reply.elapsedTime }, 'request completed');
    else super.requestCompleted(error, request, reply, metadata);
  }
}
