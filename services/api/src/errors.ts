import type { FastifyError, FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors, type ZodFastifySchemaValidationError } from 'fastify-type-provider-zod';
import { formatIssuePath, type FieldProblem } from '@pixelflow/schemas';
import { problem, sendProblem, sendRedisUnavailable } from './problems.ts';

// Every error leaves the API as problem+json: schema validation (with each
// failing field), Fastify's own errors (body too large, wrong content type,
// malformed JSON), unknown routes, and anything unexpected (500, logged).

function fieldProblems(validation: readonly ZodFastifySchemaValidationError[], context: string | undefined): FieldProblem[] {
  return validation.flatMap((item): FieldProblem[] => {
    const message = item.message ?? 'is invalid';
    if (item.keyword === 'unrecognized_keys') {
      const keys = Array.isArray(item.params['keys']) ? (item.params['keys'] as unknown[]) : [];
      return keys.map((key) => ({ path: String(key), message: `is not a field of this ${context === 'body' ? 'request' : context ?? 'request'}` }));
    }
    // The issue's path, joined with '/' (`/steps/2`): numeric segments are list indexes.
    const segments = item.instancePath.split('/').filter((s) => s !== '').map((s) => (/^\d+$/.test(s) ? Number(s) : s));
    if (segments.length === 0) return [{ path: context ?? 'body', message: message.startsWith('Invalid input') ? 'must be a JSON object' : message }];
    return [{ path: formatIssuePath(segments), message }];
  });
}

function describeFields(errors: readonly FieldProblem[]): string {
  return errors.map((e) => `${e.path} ${e.message}`).join('; ');
}

/** ioredis gives up on a command when Redis is down (fail-fast clients): a 503, not a 500. */
function isRedisUnavailable(error: Error & { code?: string }): boolean {
  return (
    error.name === 'MaxRetriesPerRequestError' ||
    error.code === 'ECONNREFUSED' ||
    /Connection is closed|Stream isn't writeable|enableOfflineQueue/.test(error.message)
  );
}

export function registerErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (hasZodFastifySchemaValidationErrors(error)) {
      const errors = fieldProblems(error.validation, error.validationContext);
      return sendProblem(reply, problem('validation', describeFields(errors), { errors, instance: request.url }));
    }
    switch (error.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return sendProblem(reply, problem('body-too-large', error.message, { instance: request.url }));
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return sendProblem(reply, problem('unsupported-media-type', `content type ${JSON.stringify(request.headers['content-type'] ?? '')} is not application/json`, { instance: request.url }));
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
        return sendProblem(reply, problem('validation', 'the body is not valid JSON', { errors: [{ path: 'body', message: 'must be valid JSON' }], instance: request.url }));
    }
    // Other client errors (e.g. 416 and 412 from the docs' static files) keep their status.
    const status = error.statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      const kind = status === 400 ? 'validation' : status === 404 ? 'not-found' : 'client-error';
      return sendProblem(reply, problem(kind, error.message, { instance: request.url, status }));
    }
    if (isRedisUnavailable(error)) {
      request.log.error({ err: error }, 'Redis unavailable');
      return sendRedisUnavailable(reply, request.url);
    }
    request.log.error({ err: error }, 'request failed');
    return sendProblem(reply, problem('internal', `request ${request.id} failed; the server log has the details`, { instance: request.url }));
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, problem('not-found', `no route ${request.method} ${request.url.split('?')[0]}`, { instance: request.url })),
  );
}
