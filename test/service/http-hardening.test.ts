import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvError } from '@pixelflow/schemas';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { postJob, startService, type TestService } from './support.ts';

// What the API does with clients that are slow, malformed or too many, over raw sockets (node:net)
// so that nothing between the test and the server repairs the request or hides how the
// connection ends: every refusal is problem+json, stalled and trickling requests are cut after
// the configured time, and a long event stream is not.

interface RawConnection {
  socket: Socket;
  /** Everything the server sent so far. */
  received(): string;
  /** Milliseconds from connecting to the socket's close. */
  closed: Promise<number>;
}

async function rawConnection(service: TestService): Promise<RawConnection> {
  const socket = connect(Number(new URL(service.url).port), '127.0.0.1');
  await once(socket, 'connect');
  const connectedAt = performance.now();
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (text += chunk));
  socket.on('error', () => undefined); // a reset is one more way to be closed
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now() - connectedAt)));
  return { socket, received: () => text, closed };
}

/** The promise's value, or null when it takes longer than `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface RawResponse {
  statusLine: string;
  headers: Record<string, string>;
  body: string;
}

function parseResponse(text: string): RawResponse {
  const end = text.indexOf('\r\n\r\n');
  expect(end, `a complete response head in ${JSON.stringify(text.slice(0, 200))}`).toBeGreaterThan(0);
  const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { statusLine, headers, body: text.slice(end + 4) };
}

/** Sends `request` as it is and reads the whole answer, which must close the connection. */
async function exchange(service: TestService, request: string): Promise<RawResponse> {
  const connection = await rawConnection(service);
  connection.socket.write(request);
  expect(await within(connection.closed, 10_000), `the server closes the connection after answering ${JSON.stringify(request.slice(0, 80))}`).not.toBeNull();
  return parseResponse(connection.received());
}

/** A complete problem+json response of `status` whose type is `/problems/<kind>`, a type the API explains. */
async function expectProblem(service: TestService, response: RawResponse, status: number, kind: string): Promise<Record<string, unknown>> {
  expect(response.statusLine).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(Number(response.headers['content-length'])).toBe(Buffer.byteLength(response.body, 'latin1'));
  expect(response.headers['x-request-id']).toMatch(/./);
  const body = JSON.parse(response.body) as Record<string, unknown>;
  expect(body).toMatchObject({ type: `/problems/${kind}`, status });
  expect(body['title']).toEqual(expect.any(String));
  expect(body['detail']).toEqual(expect.any(String));
  const explained = await fetch(`${service.url}/problems/${kind}`);
  expect(explained.status).toBe(200);
  // A kind that covers several statuses (client-error) is explained with its usual one.
  expect(await explained.json()).toMatchObject({ type: `/problems/${kind}`, title: body['title'] });
  return body;
}

describe('requests the server refuses before any route sees them', () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startService();
  });
  afterAll(async () => {
    await service.stop();
  });

  const head = (requestLine: string, ...headers: string[]): string => [requestLine, 'Host: localhost', ...headers, 'Connection: close', '', ''].join('\r\n');

  it.each([
    ['an invalid percent-encoding of bytes that are not UTF-8', '/jobs/%ff%fe'],
    ['a lone percent sign', '/jobs/%'],
    ['a percent sign before non-hex digits', '/jobs/%zz'],
  ])('answers a path with %s with a 400 problem', async (_name, path) => {
    const body = await expectProblem(service, await exchange(service, head(`GET ${path} HTTP/1.1`)), 400, 'malformed-request');
    expect(body['detail']).toContain('percent-encoded');
  });

  it('answers a path segment too long for the router (a 120-character job id) with a 414 problem', async () => {
    const body = await expectProblem(service, await exchange(service, head(`GET /jobs/${'j'.repeat(120)} HTTP/1.1`)), 414, 'uri-too-long');
    expect(body['detail']).toContain('100');
    await expectProblem(service, await exchange(service, head(`GET /jobs/${'j'.repeat(120)}/events HTTP/1.1`)), 414, 'uri-too-long');
  });

  it.each([
    ['lines ended by a bare LF', 'GET /healthz HTTP/1.1\nHost: localhost\n\n'],
    ['a NUL in a header value', 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Note: a\0b\r\n\r\n'],
    ['both Content-Length and Transfer-Encoding', 'POST /jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['two Content-Length headers', 'POST /jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}'],
    ['no Host header in HTTP/1.1', 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n'],
    ['a method name with a character methods cannot have', 'GE@T /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n'],
  ])('answers a request with %s with a 400 problem and closes the connection', async (_name, request) => {
    await expectProblem(service, await exchange(service, request), 400, 'malformed-request');
  });

  it('answers headers over the size limit (17 KB) with a 431 problem', async () => {
    await expectProblem(service, await exchange(service, head('GET /healthz HTTP/1.1', `X-Big: ${'a'.repeat(17_000)}`)), 431, 'headers-too-large');
  });

  it('answers an Expect header it cannot meet with a 417 problem', async () => {
    const body = await expectProblem(service, await exchange(service, head('GET /healthz HTTP/1.1', 'Expect: something-else')), 417, 'client-error');
    expect(body['detail']).toContain('100-continue');
  });

  it('answers CONNECT with a 405 problem naming the methods it has (this server is not a proxy)', async () => {
    const response = await exchange(service, ['CONNECT 127.0.0.1:80 HTTP/1.1', 'Host: 127.0.0.1:80', '', ''].join('\r\n'));
    await expectProblem(service, response, 405, 'client-error');
    expect(response.headers['allow']).toBe('GET, HEAD, POST, DELETE, OPTIONS');
  });

  it('answers a malformed request pipelined behind a valid one after the valid one, in order', async () => {
    const connection = await rawConnection(service);
    // The valid request's answer needs Redis (a job lookup), so the malformed one is parsed before it is sent.
    const valid = ['GET /jobs/j000000000000000000000000 HTTP/1.1', 'Host: localhost', '', ''].join('\r\n');
    const malformed = 'GET /healthz HTTP/1.1\nHost: localhost\n\n';
    connection.socket.write(valid + malformed);
    expect(await within(connection.closed, 10_000)).not.toBeNull();
    const text = connection.received();
    const first = parseResponse(text);
    expect(first.statusLine).toMatch(/^HTTP\/1\.1 404 /);
    const firstLength = Number(first.headers['content-length']);
    const rest = text.slice(text.indexOf('\r\n\r\n') + 4 + firstLength);
    await expectProblem(service, parseResponse(rest), 400, 'malformed-request');
  });

  it('still serves requests on a connection after a refused path', async () => {
    const connection = await rawConnection(service);
    connection.socket.write('GET /jobs/%zz HTTP/1.1\r\nHost: localhost\r\n\r\nGET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    expect(await within(connection.closed, 10_000)).not.toBeNull();
    expect(connection.received()).toMatch(/^HTTP\/1\.1 400 [^]*HTTP\/1\.1 200 [^]*\{"status":"ok"\}$/);
  });
});

describe('slow clients', () => {
  // Short limits so that the test waits seconds, not the production defaults.
  const REQUEST_TIMEOUT_MS = 2000;
  const HEADERS_TIMEOUT_MS = 1000;
  const KEEP_ALIVE_TIMEOUT_MS = 1000;
  /** How late a cut may come: the server checks its connections periodically, and this machine is shared. */
  const LATE_MS = 5000;
  let service: TestService;
  beforeAll(async () => {
    service = await startService({
      env: { REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS), HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS), KEEP_ALIVE_TIMEOUT_MS: String(KEEP_ALIVE_TIMEOUT_MS) },
    });
  });
  afterAll(async () => {
    await service.stop();
  });

  const postHead = (contentLength: number): string =>
    `POST /jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${contentLength}\r\n\r\n`;

  it('cuts a body that stalls (5 of 100 bytes sent) with a 408 problem once REQUEST_TIMEOUT_MS has passed', async () => {
    const connection = await rawConnection(service);
    connection.socket.write(`${postHead(100).replace('\r\n\r\n', '\r\nX-Request-Id: stalled-body-1\r\n\r\n')}{"cla`);
    const closedAfter = await within(connection.closed, REQUEST_TIMEOUT_MS + LATE_MS);
    expect(closedAfter, 'the stalled request was cut').not.toBeNull();
    expect(closedAfter).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS * 0.9);
    const response = parseResponse(connection.received());
    const body = await expectProblem(service, response, 408, 'request-timeout');
    expect(body['detail']).toContain(`${REQUEST_TIMEOUT_MS / 1000} s`);
    // The refusal is of the request already under way: it keeps that request's id.
    expect(response.headers['x-request-id']).toBe('stalled-body-1');
  });

  it('cuts a body that trickles in a byte at a time', async () => {
    const connection = await rawConnection(service);
    connection.socket.write(postHead(100));
    let sent = 0;
    const trickle = setInterval(() => {
      if (!connection.socket.destroyed && sent < 99) connection.socket.write(sent++ === 0 ? '{' : ' ');
    }, 100);
    try {
      const closedAfter = await within(connection.closed, REQUEST_TIMEOUT_MS + LATE_MS);
      expect(closedAfter, 'the trickling request was cut').not.toBeNull();
      expect(sent, 'cut before the body was complete').toBeLessThan(99);
    } finally {
      clearInterval(trickle);
    }
    await expectProblem(service, parseResponse(connection.received()), 408, 'request-timeout');
  });

  it('accepts a slow body that arrives within REQUEST_TIMEOUT_MS', async () => {
    const body = JSON.stringify({ class: 1, num_images: 1, steps: 1 });
    const connection = await rawConnection(service);
    connection.socket.write(postHead(Buffer.byteLength(body)).replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'));
    const pieces = body.match(/.{1,10}/g) ?? [];
    for (const piece of pieces) {
      await sleep((REQUEST_TIMEOUT_MS * 0.5) / pieces.length);
      connection.socket.write(piece);
    }
    expect(await within(connection.closed, 10_000)).not.toBeNull();
    expect(parseResponse(connection.received()).statusLine).toMatch(/^HTTP\/1\.1 202 /);
  });

  it('cuts headers that stall with a 408 problem once HEADERS_TIMEOUT_MS has passed', async () => {
    const connection = await rawConnection(service);
    connection.socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n');
    const closedAfter = await within(connection.closed, HEADERS_TIMEOUT_MS + LATE_MS);
    expect(closedAfter, 'the stalled headers were cut').not.toBeNull();
    expect(closedAfter).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS * 0.9);
    await expectProblem(service, parseResponse(connection.received()), 408, 'request-timeout');
  });

  it('closes a connection that never sends a byte', async () => {
    const connection = await rawConnection(service);
    expect(await within(connection.closed, HEADERS_TIMEOUT_MS + LATE_MS), 'the silent connection was closed').not.toBeNull();
  });

  it('closes an idle kept-alive connection after KEEP_ALIVE_TIMEOUT_MS', async () => {
    const connection = await rawConnection(service);
    connection.socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
    while (!connection.received().endsWith('{"status":"ok"}')) await sleep(10);
    expect(parseResponse(connection.received()).headers['keep-alive']).toBe(`timeout=${KEEP_ALIVE_TIMEOUT_MS / 1000}`);
    const answeredAt = performance.now();
    // Node waits a second beyond the timeout it announces, so that the client gives up first.
    expect(await within(connection.closed, KEEP_ALIVE_TIMEOUT_MS + 1000 + LATE_MS), 'the idle connection was closed').not.toBeNull();
    expect(performance.now() - answeredAt).toBeGreaterThanOrEqual(KEEP_ALIVE_TIMEOUT_MS * 0.9);
  });

  it('keeps an event stream open long after REQUEST_TIMEOUT_MS, and ends it when the job ends', async () => {
    const { id } = (await (await postJob(service.url, { class: 1, num_images: 1, steps: 1 })).json()) as { id: string };
    const connection = await rawConnection(service);
    connection.socket.write(`GET /jobs/${id}/events HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    const open = 3 * REQUEST_TIMEOUT_MS;
    expect(await within(connection.closed, open), 'the stream outlived the request timeout').toBeNull();
    expect(connection.received()).toMatch(/^HTTP\/1\.1 200 [^]*event: queued[^]*: heartbeat/);
    const heartbeats = connection.received().split(': heartbeat').length - 1;
    // Heartbeats every 200 ms (the test service's SSE_HEARTBEAT_MS): the stream was alive throughout.
    expect(heartbeats).toBeGreaterThan(open / 200 / 3);
    expect((await fetch(`${service.url}/jobs/${id}`, { method: 'DELETE' })).status).toBe(200);
    const deadline = performance.now() + 10_000;
    while (!connection.received().includes('event: canceled') && performance.now() < deadline) await sleep(20);
    expect(connection.received()).toContain('event: canceled');
    connection.socket.destroy();
  });
});

describe('MAX_CONNECTIONS', () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startService({ env: { MAX_CONNECTIONS: '3' } });
  });
  afterAll(async () => {
    await service.stop();
  });

  it('drops connections beyond the cap unanswered and serves again once one closes', async () => {
    const held = await Promise.all([rawConnection(service), rawConnection(service), rawConnection(service)]);
    try {
      await dropsAndRecovers(held);
    } finally {
      for (const connection of held) connection.socket.destroy();
    }
  });

  async function dropsAndRecovers(held: RawConnection[]): Promise<void> {
    const extra = await rawConnection(service);
    extra.socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    expect(await within(extra.closed, 5000), 'the connection over the cap was dropped').not.toBeNull();
    expect(extra.received()).toBe('');
    held[0]?.socket.destroy();
    const deadline = performance.now() + 5000;
    let answer = '';
    while (performance.now() < deadline) {
      const next = await rawConnection(service);
      next.socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      await within(next.closed, 5000);
      answer = next.received();
      if (answer !== '') break;
      await sleep(50);
    }
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
  }
});

describe('closing', () => {
  it('answers a request that arrives while the API closes with a 503 problem', async () => {
    const service = await startService();
    try {
      const connection = await rawConnection(service);
      connection.socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n');
      const closing = service.app.close();
      await sleep(200);
      connection.socket.write('\r\n');
      expect(await within(connection.closed, 10_000)).not.toBeNull();
      const body = await expectProblemWithoutExplanation(parseResponse(connection.received()), 503, 'service-unavailable');
      expect(body['detail']).toContain('shutting down');
      await closing;
    } finally {
      await service.stop();
    }
  });
});

/** expectProblem for a server that no longer answers GET /problems/<kind>. */
async function expectProblemWithoutExplanation(response: RawResponse, status: number, kind: string): Promise<Record<string, unknown>> {
  expect(response.statusLine).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(response.body) as Record<string, unknown>;
  expect(body).toMatchObject({ type: `/problems/${kind}`, status });
  return body;
}

describe('the timeouts and the connection cap as configuration', () => {
  it('has safe defaults', () => {
    const config = loadApiConfig({});
    expect(config.REQUEST_TIMEOUT_MS).toBeGreaterThan(0);
    expect(config.HEADERS_TIMEOUT_MS).toBeGreaterThan(0);
    expect(config.HEADERS_TIMEOUT_MS).toBeLessThanOrEqual(config.REQUEST_TIMEOUT_MS);
    expect(config.KEEP_ALIVE_TIMEOUT_MS).toBeGreaterThan(0);
    expect(config.MAX_CONNECTIONS).toBeGreaterThan(0);
  });

  it.each([
    [{ REQUEST_TIMEOUT_MS: '0' }, 'REQUEST_TIMEOUT_MS must be an integer from'],
    [{ HEADERS_TIMEOUT_MS: 'soon' }, 'HEADERS_TIMEOUT_MS must be an integer from'],
    [{ KEEP_ALIVE_TIMEOUT_MS: '-1' }, 'KEEP_ALIVE_TIMEOUT_MS must be an integer from'],
    [{ MAX_CONNECTIONS: '0' }, 'MAX_CONNECTIONS must be an integer from'],
    [{ REQUEST_TIMEOUT_MS: '5000', HEADERS_TIMEOUT_MS: '8000' }, 'HEADERS_TIMEOUT_MS must not exceed REQUEST_TIMEOUT_MS (5000)'],
  ])('refuses %j in one line that names the variable', (env, message) => {
    expect(() => loadApiConfig(env)).toThrow(EnvError);
    expect(() => loadApiConfig(env)).toThrow(message);
  });
});
