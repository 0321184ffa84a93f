import { connect, type Socket } from 'node:net';

// HTTP/1.1 over a plain socket, so that the suite can send what no HTTP client would (a bare LF,
// a NUL in a header, both Content-Length and Transfer-Encoding, a body that never arrives) and see
// exactly what comes back, including nothing at all. Only ever to 127.0.0.1.

export interface RawResponse {
  status: number;
  /** Header names lowercased; a repeated header keeps every value. */
  headers: Map<string, string[]>;
  body: Buffer;
}

export interface RawExchange {
  /** The responses read, in order (interim 1xx responses left out). */
  responses: RawResponse[];
  /** How the exchange ended: every expected response read, the server closed, or the wait ran out. */
  ending: 'answered' | 'closed' | 'timeout';
  /** A socket error (ECONNRESET, EPIPE ...), if any. */
  error: string | null;
  /** Milliseconds from the connection to the ending. */
  ms: number;
}

export interface RawRequestOptions {
  port: number;
  /** Writes the request; may write in pieces over time. Write errors are the server closing: they end nothing. */
  send: (socket: Socket) => Promise<void> | void;
  /** The method of each request sent, in order: a HEAD response has no body. */
  methods: readonly string[];
  timeoutMs: number;
  /** Read until the server closes (or the wait runs out), not just until the responses are complete. */
  untilClosed?: boolean;
  /** Stop reading a response with a status below 400 once its head is in (its body does not matter to the caller). */
  headOnlyBelow400?: boolean;
}

/** One request's bytes: `Host` first (unless `headers` has one or `host` is null), `Connection: close` unless set. */
export function request(method: string, target: string, headers: readonly (readonly [string, string])[] = [], body?: Buffer | string, options: { host?: string | null; contentLength?: boolean; version?: string } = {}): Buffer {
  const names = new Set(headers.map(([name]) => name.toLowerCase()));
  const lines = [`${method} ${target} ${options.version ?? 'HTTP/1.1'}`];
  if (!names.has('host') && options.host !== null) lines.push(`Host: ${options.host ?? '127.0.0.1'}`);
  for (const [name, value] of headers) lines.push(`${name}: ${value}`);
  const payload = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  if (payload !== undefined && options.contentLength !== false && !names.has('content-length') && !names.has('transfer-encoding')) {
    lines.push(`Content-Length: ${payload.length}`);
  }
  if (!names.has('connection')) lines.push('Connection: close');
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  return payload === undefined ? head : Buffer.concat([head, payload]);
}

interface Parsed {
  response: RawResponse;
  /** Bytes of the stream this response took (head and body). */
  length: number;
  complete: boolean;
}

/** The response at the start of `data`, or null while its head is not all in. */
function parseOne(data: Buffer, method: string, headOnlyBelow400: boolean, closed: boolean): Parsed | null {
  const headEnd = data.indexOf('\r\n\r\n');
  if (headEnd < 0) return null;
  const lines = data.subarray(0, headEnd).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(lines[0] ?? '')?.[1] ?? NaN);
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
  }
  const bodyStart = headEnd + 4;
  const done = (body: Buffer, end: number, complete = true): Parsed => ({ response: { status, headers, body }, length: end, complete });
  if (Number.isNaN(status)) return done(data.subarray(bodyStart), data.length, closed);
  if (method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200)) return done(Buffer.alloc(0), bodyStart);
  const parsed = parseBody(data, bodyStart, headers, closed, done);
  // A success's body does not matter to such a caller: its head is enough (an event stream's body never ends).
  if (!parsed.complete && headOnlyBelow400 && status < 400) return done(parsed.response.body, data.length);
  return parsed;
}

function parseBody(data: Buffer, bodyStart: number, headers: Map<string, string[]>, closed: boolean, done: (body: Buffer, end: number, complete?: boolean) => Parsed): Parsed {
  const length = headers.get('content-length')?.[0];
  if (length !== undefined && /^\d+$/.test(length)) {
    const end = bodyStart + Number(length);
    return data.length >= end ? done(data.subarray(bodyStart, end), end) : done(data.subarray(bodyStart), data.length, false);
  }
  if ((headers.get('transfer-encoding')?.[0] ?? '').toLowerCase().includes('chunked')) {
    const chunks: Buffer[] = [];
    let at = bodyStart;
    for (;;) {
      const lineEnd = data.indexOf('\r\n', at);
      if (lineEnd < 0) return done(Buffer.concat(chunks), data.length, false);
      const size = parseInt(data.subarray(at, lineEnd).toString('latin1').split(';')[0] ?? '', 16);
      if (Number.isNaN(size)) return done(Buffer.concat(chunks), data.length, closed);
      if (size === 0) {
        const trailerEnd = data.indexOf('\r\n\r\n', lineEnd);
        const end = data.subarray(lineEnd, lineEnd + 4).equals(Buffer.from('\r\n\r\n')) ? lineEnd + 4 : trailerEnd >= 0 ? trailerEnd + 4 : -1;
        return end < 0 ? done(Buffer.concat(chunks), data.length, false) : done(Buffer.concat(chunks), end);
      }
      if (data.length < lineEnd + 2 + size + 2) return done(Buffer.concat(chunks), data.length, false);
      chunks.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
    }
  }
  // Neither: the body runs to the end of the connection.
  return done(data.subarray(bodyStart), data.length, closed);
}

/** Every response in `data`, and whether all of `methods` are answered. */
export function parseResponses(data: Buffer, methods: readonly string[], headOnlyBelow400: boolean, closed: boolean): { responses: RawResponse[]; complete: boolean } {
  const responses: RawResponse[] = [];
  let rest = data;
  let complete = false;
  while (rest.length > 0) {
    const method = methods[responses.length] ?? 'GET';
    const parsed = parseOne(rest, method, headOnlyBelow400, closed);
    if (!parsed) break;
    const interim = parsed.response.status >= 100 && parsed.response.status < 200 && parsed.response.status !== 101;
    if (!interim) responses.push(parsed.response);
    rest = rest.subarray(parsed.length);
    if (!parsed.complete) {
      if (!closed) responses.pop();
      break;
    }
    if (responses.length >= methods.length && !interim) {
      complete = true;
      break;
    }
  }
  return { responses, complete };
}

/** Connects to 127.0.0.1:`port`, sends the request(s), and reads what comes back. */
export function exchange(options: RawRequestOptions): Promise<RawExchange> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect({ host: '127.0.0.1', port: options.port });
    const received: Buffer[] = [];
    let error: string | null = null;
    let finished = false;
    const finish = (ending: RawExchange['ending']): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      // A body that runs to the end of the connection is whole only once the server closed it.
      const { responses } = parseResponses(Buffer.concat(received), options.methods, options.headOnlyBelow400 ?? false, ending === 'closed');
      socket.destroy();
      resolve({ responses, ending, error, ms: performance.now() - started });
    };
    const timer = setTimeout(() => finish('timeout'), options.timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      if (options.untilClosed) return;
      const { complete } = parseResponses(Buffer.concat(received), options.methods, options.headOnlyBelow400 ?? false, false);
      if (complete) finish('answered');
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      error ??= e.code ?? e.message;
    });
    socket.on('close', () => finish('closed'));
    socket.once('connect', () => {
      Promise.resolve()
        .then(() => options.send(socket))
        .catch(() => undefined);
    });
  });
}

/** Writes `data` and resolves once it is handed to the kernel (or the socket is gone). */
export function write(socket: Socket, data: Buffer | string): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    socket.write(data, () => resolve());
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Why an error response is not the RFC 9457 problem the API promises, or null when it is (or is
 * not an error): content type application/problem+json and a JSON object whose status is the
 * HTTP status. A HEAD response has no body to check, only its content type.
 */
export function problemFault(status: number, contentType: string | undefined, body: Buffer | string | null): string | null {
  if (status < 400) return null;
  if (!(contentType ?? '').toLowerCase().startsWith('application/problem+json')) return `content-type ${JSON.stringify(contentType ?? null)}`;
  if (body === null) return null;
  const text = typeof body === 'string' ? body : body.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return `body is not JSON: ${JSON.stringify(text.slice(0, 80))}`;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 'body is not a JSON object';
  const bodyStatus = (parsed as { status?: unknown }).status;
  return bodyStatus === status ? null : `body status ${JSON.stringify(bodyStatus)} is not the HTTP status ${status}`;
}

/** GET `path` on a connection of its own, closed after: for reads that must leave no connection behind. */
export async function rawGet(port: number, path: string, timeoutMs = 10_000): Promise<{ status: number; body: string }> {
  const result = await exchange({ port, send: (socket) => void socket.write(request('GET', path)), methods: ['GET'], timeoutMs });
  const response = result.responses[0];
  if (!response) throw new Error(`GET ${path}: no answer (${result.ending}${result.error ? `, ${result.error}` : ''})`);
  return { status: response.status, body: response.body.toString('utf8') };
}
