import type { FastifyReply } from 'fastify';
import type { Problem } from '@pixelflow/schemas';

// RFC 9457 problem details for every error the API returns. Each kind has a
// stable `type` (a path on this API, where GET explains it) and a fixed title;
// `detail` says what happened this time.

export const PROBLEMS = {
  validation: { status: 400, title: 'Invalid request', about: 'The request body, a path parameter or a query parameter breaks a rule; `errors` lists each failing field.' },
  'malformed-request': {
    status: 400,
    title: 'Malformed request',
    about: 'The request is not well-formed HTTP/1.1 (e.g. a line ended by a bare LF, a control character in a header, both Content-Length and Transfer-Encoding, two Content-Length headers, no Host header) or its path is not percent-encoded UTF-8. The server closes the connection after a request it could not parse.',
  },
  'uri-too-long': { status: 414, title: 'URI too long', about: 'A segment of the path is longer than the router accepts (`detail` says how long it may be), e.g. a job id far longer than the ids POST /jobs issues.' },
  'headers-too-large': { status: 431, title: 'Request headers too large', about: 'The request line and headers together exceed the server’s limit (`detail` says it); the connection is closed.' },
  'request-timeout': {
    status: 408,
    title: 'Request timeout',
    about: 'The request did not arrive in time: its headers took longer than HEADERS_TIMEOUT_MS, or the whole request (headers and body) longer than REQUEST_TIMEOUT_MS. The connection is closed; send the request again at a steady pace.',
  },
  unauthorized: {
    status: 401,
    title: 'Unauthorized',
    about: 'With AUTH=on, the request needs `Authorization: Bearer <key>` with a key that `pixelflow keys create` issued and that has not been revoked; WWW-Authenticate says which was wrong.',
  },
  'unsupported-media-type': { status: 415, title: 'Unsupported media type', about: 'Request bodies must be application/json.' },
  'body-too-large': { status: 413, title: 'Request body too large', about: 'The body exceeds the configured BODY_LIMIT_BYTES.' },
  'client-error': { status: 400, title: 'Request refused', about: 'The request cannot be served as sent, e.g. a Range past the end of a file, a failed precondition or an Expect header other than 100-continue (417); `status` is the HTTP status (4xx) and `detail` says why.' },
  'not-found': { status: 404, title: 'Not found', about: 'No such route, job, image or preview (jobs and their files expire after the retention period).' },
  'job-finished': { status: 409, title: 'Job already finished', about: 'A job that succeeded, failed or was canceled cannot be canceled.' },
  'idempotency-key-reused': {
    status: 422,
    title: 'Idempotency key reused',
    about: 'This Idempotency-Key was already used (by the same API key, within 24 h) with a different request body; a key stands for one request. Send a new key for a new request.',
  },
  'idempotency-in-progress': {
    status: 409,
    title: 'Idempotent request in progress',
    about: 'Another request with this Idempotency-Key is still creating its job; retry after the seconds in Retry-After to get its answer.',
  },
  'rate-limited': {
    status: 429,
    title: 'Too many requests',
    about: 'This API key sent more requests this minute than its rate_per_minute allows (`pixelflow keys create --rate N/min`; with AUTH=off, RATE_LIMIT_PER_MINUTE per client address). Retry after the seconds in Retry-After; RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset say where every answer stands.',
  },
  'too-many-active-jobs': {
    status: 429,
    title: 'Too many active jobs',
    about: 'This API key already has as many jobs queued or running as its max_active allows (`pixelflow keys create --max-active`); a place frees when one of them ends in any way (succeeds, fails or is canceled). Retry after the seconds in Retry-After, or when one of your jobs ends.',
  },
  'queue-full': { status: 503, title: 'Queue full', about: 'The queue holds QUEUE_CAP jobs; retry after the number of seconds in Retry-After.' },
  'service-unavailable': { status: 503, title: 'Service unavailable', about: 'Redis or the result store (S3) is unreachable, no worker has its model loaded, or the API is shutting down; retry later.' },
  internal: { status: 500, title: 'Internal error', about: 'Something failed on our side; the log has the details under the request id.' },
} as const;

export type ProblemKind = keyof typeof PROBLEMS;

export function problemType(kind: ProblemKind): string {
  return `/problems/${kind}`;
}

/** `extra.status` overrides the kind's own, for kinds that cover several (client-error). */
export function problem(kind: ProblemKind, detail: string, { status, ...extra }: Pick<Problem, 'errors' | 'instance'> & { status?: number } = {}): Problem {
  const known = PROBLEMS[kind];
  return { type: problemType(kind), title: known.title, status: status ?? known.status, detail, ...extra };
}

/** No job `id`: never issued, malformed, or deleted after its retention period. */
export function jobNotFound(id: string, instance = `/jobs/${id}`): Problem {
  return problem('not-found', `no job ${JSON.stringify(id)} (finished jobs are deleted after their retention period)`, { instance });
}

/** The kind of problem a reply answered with, for metrics; null for a reply that is not a problem. */
const answeredKinds = new WeakMap<FastifyReply, string>();

export function problemKindOf(reply: FastifyReply): string | null {
  return answeredKinds.get(reply) ?? null;
}

export function sendProblem(reply: FastifyReply, body: Problem, headers: Record<string, string> = {}): FastifyReply {
  answeredKinds.set(reply, body.type.replace(/^\/problems\//, ''));
  return reply.code(body.status).headers(headers).type('application/problem+json').send(body);
}

/** Redis is away (or a command to it gave up): clients retry, as it usually comes back. */
export function sendRedisUnavailable(reply: FastifyReply, instance: string): FastifyReply {
  return sendProblem(reply, problem('service-unavailable', 'the job store (Redis) is unreachable; retry shortly', { instance }), { 'retry-after': '5' });
}
