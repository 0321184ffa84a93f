import { maxHeaderSize, STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ConnectionError, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, type ZodFastifySchemaValidationError } from 'fastify-type-provider-zod';
import { formatIssuePath, type FieldProblem, type Problem } from '@pixelflow/schemas';
import type { ApiConfig } from './config.ts';
import { problem, sendProblem, sendRedisUnavailable } from './problems.ts';

// Every error leaves the API as problem+json: schema validation (with each
// failing field), Fastify's own errors (body too large, wrong content type,
// malformed JSON, a path that is not percent-encoded UTF-8 or has an overlong
// segment), unknown routes, anything unexpected (500, logged), and the requests
// Node itself refuses before Fastify sees them (unparsable, too slow, headers
// too large, no Host, an Expect it cannot meet).

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

function answerError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
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
    case 'FST_ERR_BAD_URL':
      return sendProblem(reply, problem('malformed-request', 'the path is not percent-encoded UTF-8 (a % must start %XX of hex digits, and the bytes they make must be UTF-8)', { instance: request.url }));
    case 'FST_ERR_MAX_PARAM_LENGTH': {
      const limit = request.server.initialConfig.routerOptions?.maxParamLength;
      return sendProblem(reply, problem('uri-too-long', `a segment of the path is longer than ${limit ?? 'the router accepts'} characters`, { instance: request.url }));
    }
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
}

/**
 * Fastify's `frameworkErrors`: the errors its router meets before any route or hook runs (a path
 * that does not decode, a path segment over `maxParamLength`), answered like every other error.
 */
export function answerFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  // No onRequest hook ran to set it.
  reply.header('x-request-id', request.id);
  answerError(error, request, reply);
}

/** Raw requests that Node would answer with an empty 417 (see `registerErrorHandlers`). */
const unmetExpectations = new WeakSet<IncomingMessage>();
/** The id of each request under way, so that a refusal of its body (a timeout) logs and sends the same id. */
const requestIds = new WeakMap<IncomingMessage, string>();

export function registerErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler(answerError);
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, problem('not-found', `no route ${request.method} ${request.url.split('?')[0]}`, { instance: request.url })),
  );
  // Node answers these two itself with an empty body unless told otherwise: a missing Host with
  // `requireHostHeader: false` (app.ts) and an Expect it cannot meet with this listener, which
  // hands the request to Fastify instead, so that its answer carries the request id and is logged.
  refuseConnect(app);
  app.server.on('checkExpectation', (raw: IncomingMessage, res: ServerResponse) => {
    unmetExpectations.add(raw);
    app.routing(raw, res);
  });
  app.addHook('onRequest', async (request, reply) => {
    const raw = request.raw;
    requestIds.set(raw, request.id);
    // RFC 9112 §3.2: a server must answer 400 to an HTTP/1.1 request without a Host header.
    if (raw.httpVersionMajor === 1 && raw.httpVersionMinor === 1 && request.headers.host === undefined) {
      reply.header('connection', 'close');
      return sendProblem(reply, problem('malformed-request', 'an HTTP/1.1 request must have a Host header', { instance: request.url }));
    }
    if (unmetExpectations.has(raw)) {
      reply.header('connection', 'close');
      const detail = `the server cannot meet Expect: ${JSON.stringify(request.headers.expect ?? '')}; the only expectation it knows is 100-continue`;
      return sendProblem(reply, problem('client-error', detail, { instance: request.url, status: 417 }));
    }
  });
}

/** What Node's parser or its timeouts refused, as a problem; null for errors that leave nothing to answer. */
function connectionProblem(error: ConnectionError & { reason?: string }, limits: ConnectionLimits): Problem | null {
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    const detail = `the request did not arrive in time: the server waits ${limits.HEADERS_TIMEOUT_MS / 1000} s for the headers and ${limits.REQUEST_TIMEOUT_MS / 1000} s for the whole request`;
    return problem('request-timeout', detail);
  }
  if (error.code === 'HPE_HEADER_OVERFLOW') return problem('headers-too-large', `the request line and headers exceed ${maxHeaderSize} bytes`);
  // llhttp's own words for what it could not parse, e.g. "Invalid header value char".
  if (error.code.startsWith('HPE_')) return problem('malformed-request', `the request is not valid HTTP/1.1: ${error.reason ?? error.code}`);
  return null;
}

type ConnectionLimits = Pick<ApiConfig, 'HEADERS_TIMEOUT_MS' | 'REQUEST_TIMEOUT_MS'>;

/**
 * Fastify's `clientErrorHandler` (Node's `clientError`): a request Node could not parse or that
 * did not arrive within the timeouts. There is no request to answer through Fastify, so the
 * problem is written on the socket, which is then closed: what follows on it cannot be trusted
 * to start a request.
 */
export function clientErrorHandler(limits: ConnectionLimits) {
  return function (this: FastifyInstance, error: ConnectionError, socket: Socket): void {
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    const body = connectionProblem(error, limits);
    // The response the socket is writing, if any (Node's own check uses the same field).
    const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (!body || !socket.writable) {
      socket.destroy(error);
      return;
    }
    if (inFlight && error.code.startsWith('HPE_')) {
      // A malformed request pipelined behind one still being answered: its refusal comes after
      // that answer, as HTTP/1.1 orders responses, or the client would take it for the first's.
      inFlight.once('finish', () => {
        writeRefusal(this, socket, body, crypto.randomUUID(), error.code);
        socket.destroy(error);
      });
      inFlight.once('close', () => socket.destroy(error));
      return;
    }
    // A request that timed out: answered unless its response already started (a refusal sent
    // before its body arrived), which nothing can follow.
    if (!inFlight?.headersSent) writeRefusal(this, socket, body, (inFlight && requestIds.get(inFlight.req)) ?? crypto.randomUUID(), error.code);
    socket.destroy(error);
  };
}

/** A problem written on the raw socket, for requests no route will see; the connection closes after it. */
function writeRefusal(app: FastifyInstance, socket: Socket, body: Problem, id: string, code: string, extraHeaders = ''): void {
  if (!socket.writable) return;
  app.log.info({ reqId: id, code, status: body.status }, `refused a request: ${body.detail}`);
  const text = JSON.stringify(body);
  socket.write(
    `HTTP/1.1 ${body.status} ${STATUS_CODES[body.status] ?? ''}\r\ndate: ${new Date().toUTCString()}\r\n` +
      `content-type: application/problem+json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(text)}\r\n` +
      `x-request-id: ${id}\r\n${extraHeaders}connection: close\r\n\r\n${text}`,
  );
}

/**
 * CONNECT, which Node hands to a `connect` listener instead of a route (and drops without one):
 * this server is no proxy, so it answers 405 with the methods it has.
 */
function refuseConnect(app: FastifyInstance): void {
  app.server.on('connect', (raw: IncomingMessage, socket: Socket) => {
    const body = problem('client-error', 'CONNECT is not served here: this server is not a proxy', { instance: raw.url ?? '', status: 405 });
    writeRefusal(app, socket, body, crypto.randomUUID(), 'CONNECT', 'allow: GET, HEAD, POST, DELETE, OPTIONS\r\n');
    socket.end();
    socket.destroySoon();
  });
}
