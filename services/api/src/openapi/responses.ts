import { JobEvent, Problem } from '@pixelflow/schemas';
import { z } from 'zod';
import { PROBLEMS, type ProblemKind } from '../problems.ts';

// What each route answers, declared once for both Fastify and the OpenAPI document: the media type
// of every status (Fastify serialises a body by the schema of the type the reply is sent as), the
// headers that come with it, and the problem types behind each error status. Routes build their
// `response` map from these, so the document cannot say application/json where the server sends
// a PNG, an event stream or problem+json.

/** A response header as the document shows it (a JSON Schema with a description). */
export interface HeaderSchema {
  type: 'string' | 'integer';
  description: string;
  minimum?: number;
  /** Sent only to some senders (the RateLimit fields: to those with a rate), so not `required`. */
  optional?: true;
}

export interface ResponseDeclaration {
  description: string;
  /** Media type -> body schema; empty for a response without a body (304). */
  content: Record<string, { schema: z.ZodType }>;
  headers?: Record<string, HeaderSchema>;
}

/** The response headers the API sends; the document lists them once, under components.headers. */
export const RESPONSE_HEADERS = {
  'X-Request-Id': {
    type: 'string',
    description: 'The request id, on every log line about the request and on the jobs it creates: the client’s own X-Request-Id when it is 1 to 128 of letters, digits and . _ : -, otherwise one the server made',
  },
  Location: {
    type: 'string',
    description: 'POST /jobs: the path of the job just created, /jobs/{id}. 307 from an image or preview: a presigned URL of the file in the object store, valid for RESULTS_PRESIGN_SECONDS',
  },
  ETag: {
    type: 'string',
    description: 'Strong validator of the PNG, in quotes: an image’s sha256 (as in the job’s images), a preview’s from the result store; send it back in If-None-Match',
  },
  'Cache-Control': {
    type: 'string',
    description: 'A PNG never changes under its URL: public, max-age=31536000, immutable. A 307 to a presigned URL is not to be cached (its URL expires): no-store',
  },
  'Retry-After': { type: 'integer', minimum: 0, description: 'Seconds to wait before trying again' },
  // draft-ietf-httpapi-ratelimit-headers in the form @fastify/rate-limit sends (enableDraftSpec): three fields.
  'RateLimit-Limit': { type: 'integer', minimum: 1, optional: true, description: 'Requests a minute this API key may send (its rate_per_minute; with AUTH=off, RATE_LIMIT_PER_MINUTE per client address); on every answer to a limited sender' },
  'RateLimit-Remaining': { type: 'integer', minimum: 0, optional: true, description: 'Requests left in the current one-minute window' },
  'RateLimit-Reset': { type: 'integer', minimum: 0, optional: true, description: 'Seconds until the current window ends and the count starts again' },
} as const satisfies Record<string, HeaderSchema>;
type HeaderName = keyof typeof RESPONSE_HEADERS;

function headers(names: readonly HeaderName[]): Record<string, HeaderSchema> {
  const all: Record<string, HeaderSchema> = { 'X-Request-Id': RESPONSE_HEADERS['X-Request-Id'] };
  for (const name of names) all[name] = RESPONSE_HEADERS[name];
  return all;
}

/** A JSON body. */
export function json(schema: z.ZodType, description: string, headerNames: readonly HeaderName[] = []): ResponseDeclaration {
  return { description, content: { 'application/json': { schema } }, headers: headers(headerNames) };
}

/** A PNG file, cacheable for good under its URL. */
export function png(description: string): ResponseDeclaration {
  const body = z.string().meta({ contentMediaType: 'image/png', description: 'The PNG file' });
  return { description, content: { 'image/png': { schema: body } }, headers: headers(['ETag', 'Cache-Control']) };
}

/** 304 to a conditional GET whose If-None-Match matches. */
export const notModified: ResponseDeclaration = {
  description: 'Not modified: the If-None-Match validator matches (weak comparison; lists and * accepted)',
  content: {},
  headers: headers(['ETag', 'Cache-Control']),
};

/** 307 to the file in the object store, when the API is configured to redirect (RESULTS_REDIRECT=presigned). */
export const presignedRedirect: ResponseDeclaration = {
  description:
    'Temporary redirect (RESULTS_REDIRECT=presigned): GET the PNG at Location, a short-lived presigned URL of the S3 object store. The API answered 404 or 503 itself if the file is missing or the store unreachable, and 304 to a matching If-None-Match',
  content: {},
  headers: headers(['Location', 'Cache-Control']),
};

/**
 * A Server-Sent Events stream of job events. The document shows each event with `data` as JSON
 * text (the wire format); the transform in document.ts rewrites this schema into OpenAPI's
 * `itemSchema`. Fastify never serialises it: the route writes the stream itself.
 */
export function jobEventStream(description: string): ResponseDeclaration {
  return { description, content: { 'text/event-stream': { schema: JobEvent } }, headers: headers([]) };
}

/** A text body of another type (the Prometheus exposition format). */
export function text(mediaType: string, description: string): ResponseDeclaration {
  return { description, content: { [mediaType]: { schema: z.string() } }, headers: headers([]) };
}

/** Problem kinds a status can carry whose reply also says when to retry. */
const RETRYABLE: readonly ProblemKind[] = ['queue-full', 'service-unavailable', 'idempotency-in-progress', 'too-many-active-jobs', 'rate-limited'];
const RATE_LIMIT_HEADERS = ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'] as const satisfies readonly HeaderName[];

/**
 * The problem+json responses of a route, one per status, each naming the problem types it can
 * carry. `internal` (500) is added: any route can fail unexpectedly.
 */
export function problems(...kinds: ProblemKind[]): Record<number, ResponseDeclaration> {
  const byStatus = new Map<number, ProblemKind[]>();
  for (const kind of [...kinds, 'internal' as const]) {
    const status = PROBLEMS[kind].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), kind]);
  }
  const responses: Record<number, ResponseDeclaration> = {};
  for (const [status, statusKinds] of byStatus) {
    const list = statusKinds.map((kind) => `/problems/${kind} (${PROBLEMS[kind].title}): ${PROBLEMS[kind].about}`).join(' ');
    responses[status] = {
      description: `${statusKinds.map((kind) => PROBLEMS[kind].title).join(' or ')}. ${list}`,
      content: { 'application/problem+json': { schema: Problem } },
      headers: headers([...(statusKinds.some((kind) => RETRYABLE.includes(kind)) ? ['Retry-After' as const] : []), ...(statusKinds.includes('rate-limited') ? RATE_LIMIT_HEADERS : [])]),
    };
  }
  return responses;
}

/** Problems of every route under /jobs/{id}: no such job, and Redis away. */
export const JOB_ROUTE_PROBLEMS = ['not-found', 'service-unavailable'] as const satisfies readonly ProblemKind[];
