import { LogController, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';

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

/**
 * Where an API key could reach a log line: Fastify's request serializer logs no headers, but a line
 * that logs a request's headers (a debug line, an error with its request) must not carry the key.
 */
const SECRET_PATHS = ['req.headers.authorization', 'request.headers.authorization', 'headers.authorization', 'req.headers.cookie', 'headers.cookie'];

/** Logger options with the secrets above redacted; `false` (no logging) and an instance pass as they are. */
type LoggerOption = NonNullable<FastifyServerOptions['logger']>;

export function withRedaction(logger: LoggerOption): LoggerOption {
  if (typeof logger !== 'object') return logger;
  return { ...logger, redact: { paths: SECRET_PATHS, censor: '[redacted]' } };
}
