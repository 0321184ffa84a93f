import type { Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import { count, Tally, type CheckReport, type Verdict } from '../report.ts';
import { eventCounts, getJob, mapLimit, sha256, submit, waitFinished } from '../jobs.ts';
import type { Random } from '../random.ts';
import { exchange, problemFault, request, sleep, write } from '../raw-http.ts';
import type { Deployment } from '../services.ts';

// The fuzz: malformed requests to every route the API's own /openapi.json lists (and the few it
// serves unlisted), in its path parameters, query strings, headers, methods and bodies, and HTTP
// that only a raw socket can send. Whatever is sent, an error answer must be an RFC 9457 problem
// (content type application/problem+json, a JSON body whose status is the HTTP status), no answer
// may be a 5xx, every request must be answered, and the API must still serve, unchanged, the job it
// had finished before the fuzz began. A worker runs meanwhile, as in production, so /readyz is 200
// and a mutation that happens to be a valid job simply runs (each such body asks for 1 step).

export interface FuzzOptions {
  requests: number;
  /** The API's REQUEST_TIMEOUT_MS and HEADERS_TIMEOUT_MS: requests that never finish arriving wait for them. */
  requestTimeoutMs: number;
  headersTimeoutMs: number;
}

interface Operation {
  method: string;
  /** The path template, e.g. /jobs/{id}/images/{n}. */
  path: string;
  params: { name: string; in: string }[];
  hasBody: boolean;
}

interface FuzzCase {
  family: string;
  label: string;
  send: Buffer | ((socket: Socket) => Promise<void>);
  /** The method of each request in it (pipelined requests: several). */
  methods: string[];
  /** It never finishes arriving: the server's timeout answers it. */
  slow?: boolean;
}

interface Outcome {
  fuzzCase: FuzzCase;
  statuses: number[];
  /** Error answers that are not problem+json with their status. */
  notProblems: string[];
  /** Why some of its requests got no answer; null when all did. */
  unanswered: string | null;
}

const VALID_BODY = { class: 0, num_images: 1, steps: 1, seed: 1 };

/** Values for a path segment: empty, over-long, badly encoded, the wrong shape, injection attempts. */
function segmentValues(referenceId: string): string[] {
  const id = referenceId;
  return [
    '', ' ', '%20', '%ff', '%', '%zz', '%0', '%00', '%2e%2e', '..', '.', '%2f', '%5c', '%3f', '%23',
    'a'.repeat(101), 'j' + '0'.repeat(4000), 'j' + '0'.repeat(24), 'j' + '0'.repeat(23), 'J' + 'A'.repeat(24), 'j' + 'g'.repeat(24),
    id.toUpperCase(), `${id}0`, `${id}%00`, `${id}:events`, `${id}%3Aevents`, `%6a${id.slice(1)}`, `${id.slice(0, -1)}%ff`,
    '%c3%a9', '%c0%af', '%ef%bf%bd', '%f0%9f%98%80', '%e2%80%ae', '%ed%a0%80', '%ef%bc%98',
    '-1', '-0', '08', '07', '0x1', '1e3', '+1', '1.0', '0.0', '8', '16', '%37', '7%20', '99999999999999999999',
    'NaN', 'Infinity', 'null', 'undefined', 'true', '[]', '{}', '__proto__', 'constructor', 'prototype', 'hasOwnProperty',
    '%0a', '%0d%0a', ';', ',', '*', ':id', '{id}', '$%7Bid%7D', "'%20OR%201=1", '%3Cscript%3E', 'validation%00', 'VALIDATION', 'not-found%2F..',
  ];
}

function queryValues(finalEventId: string | null): string[] {
  const big = '9'.repeat(65);
  return [
    '?', '?a=1', '?a', '?=', '?&&', '?a=%ff', '?%ff=1', '?a=%', `?a=${'x'.repeat(8000)}`, '?__proto__[x]=1', '?constructor[prototype][x]=1', '?a[]=1&a[]=2',
    '?last_event_id=', '?last_event_id=x', '?last_event_id=1-', '?last_event_id=-1', '?last_event_id=1-2-3', '?last_event_id=18446744073709551616-0',
    '?last_event_id=18446744073709551615-18446744073709551615', '?last_event_id=0-0', '?last_event_id=1&last_event_id=2', '?last_event_id=%00',
    `?last_event_id=${big}`, '?last_event_id=1%2D0', '?last_event_id=%20', '?last_event_id=1.5-0', '?last_event_id=0x1-0',
    ...(finalEventId ? [`?last_event_id=${finalEventId}`] : []),
  ];
}

function headerValues(): [string, string][] {
  return [
    ['Accept', 'application/xml'], ['Accept', '*/*;q=bad'], ['Accept', ''], ['Accept', 'text/event-stream'], ['Accept', 'application/problem+json'],
    ['If-None-Match', '*'], ['If-None-Match', 'garbage'], ['If-None-Match', 'W/"x", "y"'], ['If-None-Match', `"${'a'.repeat(1000)}"`], ['If-None-Match', ','],
    ['If-Modified-Since', 'yesterday'], ['If-Match', '"nope"'], ['If-Unmodified-Since', 'Thu, 01 Jan 1970 00:00:00 GMT'],
    ['Range', 'bytes=5-1'], ['Range', 'bytes=999999-'], ['Range', 'bytes=abc'], ['Range', 'bytes=0-0,1-1,2-2'], ['Range', 'lines=1-2'],
    ['Last-Event-ID', 'x'], ['Last-Event-ID', ''], ['Last-Event-ID', '18446744073709551616-0'], ['Last-Event-ID', '1-1-1'], ['Last-Event-ID', '9'.repeat(100)],
    ['Last-Event-ID', '18446744073709551615-18446744073709551615'], ['Last-Event-ID', '\xff\xfe'],
    ['X-Request-Id', 'a'.repeat(300)], ['X-Request-Id', '../../etc/passwd'], ['X-Request-Id', '\xe9\xff'], ['X-Request-Id', ''],
    ['Expect', '100-continue'], ['Expect', 'bogus'], ['Authorization', `Bearer ${'x'.repeat(500)}`], ['Content-Length', '0'],
    ['Content-Type', 'application/json'], ['Content-Type', 'text/plain'], ['Content-Type', '\xff'],
    ['Origin', 'null'], ['Origin', 'http://evil.example'], ['Origin', '\xff'], ['Access-Control-Request-Method', 'DELETE'],
    ['Cookie', `a=${'b'.repeat(2000)}`], ['Accept-Encoding', 'gzip;q=abc, br'], ['Accept-Language', '\xff\xfe'], ['Accept-Charset', 'utf-7'],
    ['Forwarded', 'for=unknown'], ['X-Forwarded-For', 'not-an-ip'], ['X-Forwarded-Proto', 'gopher'], ['X-Forwarded-Host', 'evil.example'],
    ['Host', '127.0.0.1:99999'], ['Host', '[::1'], ['Host', 'a'.repeat(300)], ['Host', 'user@host'],
    ['Connection', 'keep-alive, Upgrade'], ['TE', 'trailers'], ['Content-Encoding', 'gzip'], ['Max-Forwards', '-1'], ['Via', `1.1 ${'x'.repeat(100)}`],
    ['X-HTTP-Method-Override', 'DELETE'], ['Prefer', 'respond-async, wait=-1'], ['Cache-Control', 'no-cache, max-age=-1'],
  ];
}

/** Bodies for POST /jobs: broken JSON, JSON of the wrong shape, unknown fields, huge values. */
function jsonSyntaxBodies(): [string, Buffer][] {
  const text = (label: string, body: string): [string, Buffer] => [label, Buffer.from(body, 'utf8')];
  return [
    text('empty', ''), text('space', ' '), text('{', '{'), text('}', '}'), text('missing value', '{"class":}'), text('single quotes', "{'class':0}"),
    text('trailing comma', '{"class":0,}'), text('NaN', 'NaN'), text('[', '['), text('nul', 'nul'), text('null', 'null'), text('true', 'true'),
    text('0', '0'), text('string', '"x"'), text('array', '[]'), text('array of a job', '[{"class":0}]'), text('trailing garbage', '{"class":0}garbage'),
    text('two objects', '{"class":0}{"class":1}'), text('5000 nested arrays', '['.repeat(5000) + ']'.repeat(5000)),
    text('2000 nested objects', '{"a":'.repeat(2000) + '1' + '}'.repeat(2000)), text('1e999', '{"class":1e999}'), text('-0', '{"class":-0,"steps":1}'),
    text('duplicate keys', '{"class":0,"class":"x"}'), text('__proto__', '{"__proto__":{"steps":1},"class":0}'),
    text('constructor.prototype', '{"constructor":{"prototype":{"x":1}},"class":0}'), text('lone surrogate', '{"class":"\\ud800"}'),
    ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0x63, 0x6c, 0x61, 0x73, 0x73, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])],
    text('BOM', '\ufeff{"class":0,"steps":1}'), ['UTF-16LE', Buffer.from('{"class":0}', 'utf16le')], text('NUL in a string', '{"class":"\\u0000"}'),
    text('raw NUL', '{"class":0\u0000}'), text('newlines after', '{"class":0,"steps":1}\n\n\n'), text('unterminated', '{"class":0'),
    text('leading zero', '{"class":01}'), text('hex number', '{"class":0x1}'), text('bare decimal', '{"class":.5}'), text('Infinity', '{"class":Infinity}'),
    text('class "0"', '{"class":"0","steps":1}'), text('comment', '{"class":0 /* c */}'), text('escaped key', '{"\\u0063lass":0,"steps":1,"num_images":1}'),
  ];
}

function fieldValues(): unknown[] {
  return [
    null, true, false, '', 'x', -1, 0, 1.5, -1.5, 1e308, -1e308, 2 ** 53 + 1, 2 ** 32, 101, 26, 9, 1e-9, [], {}, [0], ['1'], [1, 1], [1, 1, 1, 1, 1],
    '1', 'EULER', 'dopri5 ', 'Dopri5', '\u0000', 'a'.repeat(2000), { $gt: 0 }, [[1]], [null], [1.5, 1, 1, 1], [101, 1, 1, 1], [0, 1, 1, 1],
  ];
}

function shapeBodies(fields: string[]): [string, unknown][] {
  const bodies: [string, unknown][] = [];
  for (const field of fields) {
    for (const value of fieldValues()) bodies.push([`${field}=${JSON.stringify(value)?.slice(0, 30)}`, { ...VALID_BODY, [field]: value }]);
    const without: Record<string, unknown> = { ...VALID_BODY };
    delete without[field];
    bodies.push([`without ${field}`, without]);
  }
  const many: Record<string, unknown> = { ...VALID_BODY };
  for (let i = 0; i < 600; i++) many[`f${i}`] = i;
  bodies.push(
    ['{}', {}], ['unknown field', { ...VALID_BODY, extra: 1 }], ['Class', { Class: 0 }], ['"class "', { 'class ': 0 }], ['STEPS', { ...VALID_BODY, STEPS: 1 }],
    ['600 unknown fields', many], ['parameters', { ...VALID_BODY, parameters: { seed: 1 } }], ['model', { ...VALID_BODY, model: 'other' }],
    ['id', { ...VALID_BODY, id: 'j' + '0'.repeat(24) }], ['status', { ...VALID_BODY, status: 'succeeded' }],
    ['10 KB class name', { ...VALID_BODY, class: 'a'.repeat(10_000) }], ['3000 steps', { ...VALID_BODY, steps: new Array(3000).fill(1) }],
    ['seed 1e300', { ...VALID_BODY, seed: 1e300 }], ['class 1e29', { ...VALID_BODY, class: 1.2345678901234568e29 }],
  );
  return bodies;
}

const CONTENT_TYPES = [
  null, 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16', 'application/json; charset=latin1',
  'APPLICATION/JSON', 'application/json;', 'application/json garbage', 'application/jsonx', 'application/vnd.api+json', 'application/merge-patch+json', '*/*', ';;;',
  'application/json; charset="utf-8"', 'application/json, text/plain', 'image/png', 'application/octet-stream', 'text/json', '', 'application/json; charset=\xff',
  'application/json; boundary=', 'application/problem+json',
];

/** HTTP no client library sends: broken framing, bytes where none may be, smuggling shapes, requests that never finish. */
function rawCases(options: FuzzOptions): FuzzCase[] {
  const H = 'Host: 127.0.0.1\r\n';
  const C = 'Connection: close\r\n';
  const raw = (label: string, text: string | Buffer, methods = ['GET']): FuzzCase => ({
    family: 'raw HTTP',
    label,
    send: typeof text === 'string' ? Buffer.from(text, 'latin1') : text,
    methods,
  });
  const post = (headers: string, body: string): string => `POST /jobs HTTP/1.1\r\n${H}${C}Content-Type: application/json\r\n${headers}\r\n${body}`;
  const body = JSON.stringify(VALID_BODY);
  const slow = (label: string, head: string, pieces: string[], everyMs: number): FuzzCase => ({
    family: 'raw HTTP',
    label,
    slow: true,
    methods: ['POST'],
    send: async (socket) => {
      await write(socket, Buffer.from(head, 'latin1'));
      for (const piece of pieces) {
        await sleep(everyMs);
        if (socket.destroyed) return;
        await write(socket, piece);
      }
    },
  });
  const big = 'a'.repeat(20_000);
  return [
    raw('bare LF everywhere', 'GET /healthz HTTP/1.1\nHost: 127.0.0.1\nConnection: close\n\n'),
    raw('bare LF in a header', `GET /healthz HTTP/1.1\r\n${H}X-A: b\nX-B: c\r\n${C}\r\n`),
    raw('bare CR', 'GET /healthz HTTP/1.1\rHost: 127.0.0.1\rConnection: close\r\r'),
    raw('NUL in a header value', `GET /healthz HTTP/1.1\r\n${H}X-A: a\0b\r\n${C}\r\n`),
    raw('NUL in a header name', `GET /healthz HTTP/1.1\r\n${H}X-\0A: b\r\n${C}\r\n`),
    raw('NUL in the path', `GET /heal\0thz HTTP/1.1\r\n${H}${C}\r\n`),
    raw('DEL in a header value', `GET /healthz HTTP/1.1\r\n${H}X-A: a\x7fb\r\n${C}\r\n`),
    raw('CR inside a header value', `GET /healthz HTTP/1.1\r\n${H}X-A: a\rb\r\n${C}\r\n`),
    raw('Content-Length and Transfer-Encoding', post(`Content-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n`, `0\r\n\r\n`), ['POST']),
    raw('Transfer-Encoding and Content-Length', post(`Transfer-Encoding: chunked\r\nContent-Length: 5\r\n`, `0\r\n\r\n`), ['POST']),
    raw('two equal Content-Lengths', post(`Content-Length: ${body.length}\r\nContent-Length: ${body.length}\r\n`, body), ['POST']),
    raw('two different Content-Lengths', post(`Content-Length: ${body.length}\r\nContent-Length: ${body.length + 1}\r\n`, body + ' '), ['POST']),
    raw('Content-Length list', post(`Content-Length: ${body.length}, ${body.length}\r\n`, body), ['POST']),
    raw('negative Content-Length', post('Content-Length: -1\r\n', body), ['POST']),
    raw('Content-Length abc', post('Content-Length: abc\r\n', body), ['POST']),
    raw('Content-Length +N', post(`Content-Length: +${body.length}\r\n`, body), ['POST']),
    raw('Content-Length 0xN', post(`Content-Length: 0x${body.length.toString(16)}\r\n`, body), ['POST']),
    raw('Content-Length 2^64', post('Content-Length: 18446744073709551616\r\n', body), ['POST']),
    raw('Content-Length 20 digits', post('Content-Length: 99999999999999999999\r\n', body), ['POST']),
    raw('Content-Length over the body limit, nothing sent', post('Content-Length: 20000\r\n', ''), ['POST']),
    raw('body over the limit', post('Content-Length: 20000\r\n', big), ['POST']),
    raw('chunked body over the limit', post('Transfer-Encoding: chunked\r\n', `${(20_000).toString(16)}\r\n${big}\r\n0\r\n\r\n`), ['POST']),
    raw('Transfer-Encoding twice', post('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`), ['POST']),
    raw('Transfer-Encoding gzip, chunked', post('Transfer-Encoding: gzip, chunked\r\n', `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`), ['POST']),
    raw('Transfer-Encoding xchunked', post('Transfer-Encoding: xchunked\r\n', body), ['POST']),
    raw('Transfer-Encoding chunked, identity', post('Transfer-Encoding: chunked, identity\r\n', body), ['POST']),
    raw('chunk size zz', post('Transfer-Encoding: chunked\r\n', 'zz\r\n{}\r\n0\r\n\r\n'), ['POST']),
    raw('chunk size overflow', post('Transfer-Encoding: chunked\r\n', 'ffffffffffffffffff\r\n{}\r\n0\r\n\r\n'), ['POST']),
    raw('20 KB chunk extension', post('Transfer-Encoding: chunked\r\n', `2;${'a'.repeat(20_000)}\r\n{}\r\n0\r\n\r\n`), ['POST']),
    raw('chunk lines ended by LF', post('Transfer-Encoding: chunked\r\n', `${body.length.toString(16)}\n${body}\n0\n\n`), ['POST']),
    raw('NUL in a trailer', post('Transfer-Encoding: chunked\r\n', `${body.length.toString(16)}\r\n${body}\r\n0\r\nX-T: a\0b\r\n\r\n`), ['POST']),
    raw('chunked body on GET', `GET /healthz HTTP/1.1\r\n${H}${C}Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`),
    raw('Content-Length on GET hiding a request', `GET /healthz HTTP/1.1\r\n${H}Content-Length: 38\r\n\r\nGET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, ['GET']),
    raw('16 KB header', `GET /healthz HTTP/1.1\r\n${H}${C}X-Big: ${'a'.repeat(16 * 1024)}\r\n\r\n`),
    raw('100 KB header', `GET /healthz HTTP/1.1\r\n${H}${C}X-Big: ${'a'.repeat(100 * 1024)}\r\n\r\n`),
    raw('400 headers of 50 bytes', `GET /healthz HTTP/1.1\r\n${H}${C}${Array.from({ length: 400 }, (_, i) => `X-H${i}: ${'b'.repeat(40)}\r\n`).join('')}\r\n`),
    raw('2100 tiny headers', `GET /healthz HTTP/1.1\r\n${H}${C}${Array.from({ length: 2100 }, (_, i) => `X${i}: 1\r\n`).join('')}\r\n`),
    raw('20 KB URL', `GET /healthz?${'a'.repeat(20_000)} HTTP/1.1\r\n${H}${C}\r\n`),
    raw('header without a colon', `GET /healthz HTTP/1.1\r\n${H}X-A b\r\n${C}\r\n`),
    raw('space before the colon', `GET /healthz HTTP/1.1\r\nHost : 127.0.0.1\r\n${C}\r\n`),
    raw('obs-fold', `GET /healthz HTTP/1.1\r\n${H}X-A: a\r\n  b\r\n${C}\r\n`),
    raw('invalid header name', `GET /healthz HTTP/1.1\r\n${H}X(A): b\r\n${C}\r\n`),
    raw('no Host in HTTP/1.1', `GET /healthz HTTP/1.1\r\n${C}\r\n`),
    raw('two Host headers', `GET /healthz HTTP/1.1\r\n${H}${H}${C}\r\n`),
    raw('empty Host', `GET /healthz HTTP/1.1\r\nHost: \r\n${C}\r\n`),
    raw('HTTP/1.0 without Host', 'GET /healthz HTTP/1.0\r\n\r\n'),
    raw('HTTP/2.0 on HTTP/1 framing', `GET /healthz HTTP/2.0\r\n${H}${C}\r\n`),
    raw('HTTP/1.2', `GET /healthz HTTP/1.2\r\n${H}${C}\r\n`),
    raw('HTTP/9.9', `GET /healthz HTTP/9.9\r\n${H}${C}\r\n`),
    raw('version HTTP/1', `GET /healthz HTTP/1\r\n${H}${C}\r\n`),
    raw('no version', 'GET /healthz\r\n\r\n'),
    raw('HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
    raw('TLS ClientHello', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00])),
    raw('empty request', '\r\n\r\n'),
    raw('absolute-form target', `GET http://127.0.0.1/healthz HTTP/1.1\r\n${H}${C}\r\n`),
    raw('asterisk-form OPTIONS', `OPTIONS * HTTP/1.1\r\n${H}${C}\r\n`),
    raw('asterisk target on GET', `GET * HTTP/1.1\r\n${H}${C}\r\n`),
    raw('target without a slash', `GET healthz HTTP/1.1\r\n${H}${C}\r\n`),
    raw('control character in the path', `GET /he\x01althz HTTP/1.1\r\n${H}${C}\r\n`),
    raw('tab in the path', `GET /jobs/\tx HTTP/1.1\r\n${H}${C}\r\n`),
    raw('raw UTF-8 in the path', Buffer.concat([Buffer.from('GET /jobs/'), Buffer.from('é', 'utf8'), Buffer.from(` HTTP/1.1\r\n${H}${C}\r\n`)])),
    raw('raw 0xff in the path', Buffer.concat([Buffer.from('GET /jobs/'), Buffer.from([0xff]), Buffer.from(` HTTP/1.1\r\n${H}${C}\r\n`)])),
    raw('fragment in the target', `GET /healthz#x HTTP/1.1\r\n${H}${C}\r\n`),
    raw('two spaces in the request line', `GET  /healthz  HTTP/1.1\r\n${H}${C}\r\n`),
    raw('lowercase method', `get /healthz HTTP/1.1\r\n${H}${C}\r\n`),
    raw('unknown method', `FOO /healthz HTTP/1.1\r\n${H}${C}\r\n`),
    raw('NUL in the method', `G\0T /healthz HTTP/1.1\r\n${H}${C}\r\n`),
    raw('pipelined garbage after a valid request', `GET /healthz HTTP/1.1\r\n${H}\r\nGARBAGE\r\n\r\n`, ['GET', 'GET']),
    raw('pipelined smuggling shape', `GET /healthz HTTP/1.1\r\n${H}\r\nPOST /jobs HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, ['GET', 'POST']),
    raw('Expect: bogus', `POST /jobs HTTP/1.1\r\n${H}${C}Expect: bogus\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`, ['POST']),
    raw('Expect: 100-continue with its body', `POST /jobs HTTP/1.1\r\n${H}${C}Expect: 100-continue\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}`, ['POST']),
    raw('Upgrade: websocket', `GET /healthz HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`),
    raw('Upgrade: h2c', `GET /healthz HTTP/1.1\r\n${H}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`),
    raw('CONNECT', `CONNECT 127.0.0.1:80 HTTP/1.1\r\n${H}${C}\r\n`, ['CONNECT']),
    raw('two Content-Types', post(`Content-Type: text/plain\r\nContent-Length: ${body.length}\r\n`, body), ['POST']),
    slow('Content-Length 100, 5 bytes sent', `POST /jobs HTTP/1.1\r\n${H}${C}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"cla`, [], 0),
    slow('headers that never end', `GET /healthz HTTP/1.1\r\n${H}X-A: 1\r\n`, [], 0),
    slow('chunked body without its last chunk', `POST /jobs HTTP/1.1\r\n${H}${C}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n`, [], 0),
    slow(
      'body trickled a byte at a time',
      `POST /jobs HTTP/1.1\r\n${H}${C}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
      [...body],
      Math.ceil((options.requestTimeoutMs * 2) / body.length),
    ),
    slow('headers trickled a byte at a time', '', [...`GET /healthz HTTP/1.1\r\n${H}${C}\r\n`], Math.ceil((options.headersTimeoutMs * 2) / 40)),
  ];
}

/** The operations the API's OpenAPI document lists, plus what it serves unlisted (the web page, the document, its viewer). */
function operationsOf(document: { paths: Record<string, Record<string, { parameters?: { name: string; in: string }[]; requestBody?: unknown }>> }): Operation[] {
  const operations: Operation[] = [];
  for (const [path, item] of Object.entries(document.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!['get', 'put', 'post', 'delete', 'patch', 'options', 'head', 'trace', 'query'].includes(method)) continue;
      operations.push({ method: method.toUpperCase(), path, params: (op.parameters ?? []).map((p) => ({ name: p.name, in: p.in })), hasBody: op.requestBody !== undefined });
    }
  }
  for (const path of ['/', '/openapi.json', '/docs', '/assets/{file}']) operations.push({ method: 'GET', path, params: path.includes('{file}') ? [{ name: 'file', in: 'path' }] : [], hasBody: false });
  return operations;
}

function fill(path: string, values: Record<string, string>): string {
  return path.replace(/\{(\w+)\}/g, (_m, name: string) => values[name] ?? 'x');
}

export async function runFuzz(deployment: Deployment, random: Random, options: FuzzOptions): Promise<CheckReport> {
  const started = performance.now();
  const api = await deployment.startApi({ REQUEST_TIMEOUT_MS: String(options.requestTimeoutMs), HEADERS_TIMEOUT_MS: String(options.headersTimeoutMs) });
  await deployment.startWorker();
  const port = api.port;

  // The job the fuzz must leave as it was: finished, with its images and previews.
  const reference = await submit(api.url, { class: 3, num_images: 2, steps: 2, seed: 7 });
  if (!reference.id) throw new Error(`the fuzz's reference job was refused (${reference.status})`);
  const referenceId = reference.id;
  const before = (await waitFinished(api.url, [referenceId], 60_000)).get(referenceId);
  if (before?.status !== 'succeeded') throw new Error(`the fuzz's reference job did not succeed (${before?.status ?? 'not found'})`);
  const redis = deployment.redisClient();
  const finalEventId = (await eventCounts(redis, deployment.prefix, referenceId)).lastId;

  const document = (await (await fetch(`${api.url}/openapi.json`)).json()) as Parameters<typeof operationsOf>[0] & {
    paths: Record<string, Record<string, { requestBody?: { content?: Record<string, { schema?: { properties?: Record<string, unknown> } }> } }>>;
  };
  const operations = operationsOf(document);
  const bodyFields = Object.keys(document.paths['/jobs']?.['post']?.requestBody?.content?.['application/json']?.schema?.properties ?? {});
  const good: Record<string, string> = { id: referenceId, n: '0', kind: 'validation', file: 'index.html' };
  const cases: FuzzCase[] = [];
  const http = (family: string, label: string, method: string, target: string, headers: [string, string][] = [], body?: Buffer | string): FuzzCase => ({
    family,
    label,
    send: request(method, target, headers, body),
    methods: [method],
  });
  const json: [string, string] = ['Content-Type', 'application/json'];

  // Path parameters, each in turn, the others valid.
  const segments = segmentValues(referenceId);
  for (const op of operations) {
    for (const param of op.params.filter((p) => p.in === 'path')) {
      for (const value of segments) {
        const target = fill(op.path, { ...good, [param.name]: value });
        cases.push(http('path parameters', `${op.method} ${op.path} ${param.name}=${value.slice(0, 24)}`, op.method, target, op.hasBody ? [json] : [], op.hasBody ? JSON.stringify(VALID_BODY) : undefined));
      }
    }
  }
  // Query strings.
  const queries = queryValues(finalEventId);
  for (const op of operations) {
    for (const query of queries) {
      cases.push(http('query strings', `${op.method} ${op.path}${query.slice(0, 30)}`, op.method, fill(op.path, good) + query, op.hasBody ? [json] : [], op.hasBody ? JSON.stringify(VALID_BODY) : undefined));
    }
  }
  // Headers.
  const headers = headerValues();
  for (const op of operations) {
    for (const header of headers) {
      const withBody = op.hasBody && header[0].toLowerCase() !== 'content-length';
      const extra: [string, string][] = withBody && header[0].toLowerCase() !== 'content-type' ? [json, header] : [header];
      cases.push(http('headers', `${op.method} ${op.path} ${header[0]}: ${header[1].slice(0, 24)}`, op.method, fill(op.path, good), extra, withBody ? JSON.stringify(VALID_BODY) : undefined));
    }
  }
  // Methods a path does not have, and HEAD on every GET.
  const paths = [...new Set(operations.map((op) => op.path))];
  for (const path of paths) {
    const defined = new Set(operations.filter((op) => op.path === path).map((op) => op.method));
    for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'PROPFIND', 'SEARCH', 'QUERY', 'MKCOL', 'PURGE']) {
      if (defined.has(method) && method !== 'HEAD') continue;
      const body = ['POST', 'PUT', 'PATCH', 'QUERY'].includes(method) ? JSON.stringify(VALID_BODY) : undefined;
      cases.push(http('methods', `${method} ${path}`, method, fill(path, good), body ? [json] : [], body));
    }
  }
  // Bodies of POST /jobs, and bodies where none belongs.
  for (const [label, body] of jsonSyntaxBodies()) cases.push(http('bodies', `POST /jobs ${label}`, 'POST', '/jobs', [json], body));
  for (const [label, body] of shapeBodies(bodyFields)) cases.push(http('bodies', `POST /jobs ${label}`, 'POST', '/jobs', [json], JSON.stringify(body)));
  for (const type of CONTENT_TYPES) {
    cases.push(http('content types', `POST /jobs content-type ${JSON.stringify(type)}`, 'POST', '/jobs', type === null ? [] : [['Content-Type', type]], JSON.stringify(VALID_BODY)));
  }
  cases.push(http('content types', 'POST /jobs form-encoded', 'POST', '/jobs', [['Content-Type', 'application/x-www-form-urlencoded']], 'class=0&steps=1'));
  for (const encoding of ['gzip', 'br', 'deflate', 'identity', 'compress', 'gzip, gzip']) {
    cases.push(http('content encodings', `POST /jobs Content-Encoding ${encoding} (plain body)`, 'POST', '/jobs', [json, ['Content-Encoding', encoding]], JSON.stringify(VALID_BODY)));
  }
  cases.push(http('content encodings', 'POST /jobs gzip body', 'POST', '/jobs', [json, ['Content-Encoding', 'gzip']], gzipSync(JSON.stringify(VALID_BODY))));
  cases.push(http('content encodings', 'POST /jobs gzip body, no Content-Encoding', 'POST', '/jobs', [json], gzipSync(JSON.stringify(VALID_BODY))));
  for (const op of operations.filter((o) => !o.hasBody)) {
    cases.push(http('bodies', `${op.method} ${op.path} with a JSON body`, op.method, fill(op.path, good), [json], '{"class":'));
    cases.push(http('bodies', `${op.method} ${op.path} with a text body`, op.method, fill(op.path, good), [['Content-Type', 'text/plain']], 'hello'));
  }
  cases.push(...rawCases(options));

  // Random combinations of the above: a quarter of the count asked for at least, and as many more as it takes to reach it.
  const syntax = jsonSyntaxBodies();
  const shapes = shapeBodies(bodyFields);
  const total = Math.max(options.requests, cases.length + Math.ceil(options.requests / 4));
  while (cases.length < total) {
    const op = random.pick(operations);
    const values = { ...good };
    for (const param of op.params.filter((p) => p.in === 'path')) if (random.chance(0.5)) values[param.name] = random.pick(segments);
    const target = fill(op.path, values) + (random.chance(0.4) ? random.pick(queries) : '');
    const extra: [string, string][] = [];
    for (let i = random.int(0, 2); i > 0; i--) extra.push(random.pick(headers));
    let body: Buffer | string | undefined;
    if (op.hasBody || random.chance(0.1)) {
      if (!extra.some(([name]) => name.toLowerCase() === 'content-type')) extra.push(json);
      body = random.chance(0.5) ? random.pick(syntax)[1] : JSON.stringify(random.pick(shapes)[1]);
    }
    const method = random.chance(0.1) ? random.pick(['PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD']) : op.method;
    const clean = extra.filter(([name]) => !(body !== undefined && name.toLowerCase() === 'content-length'));
    cases.push(http('random combinations', `${method} ${target.slice(0, 40)} [${clean.map(([n]) => n).join(', ')}]`, method, target, clean, body));
  }

  const outcomes = await mapLimit(cases, 8, async (fuzzCase): Promise<Outcome> => {
    const waitMs = fuzzCase.slow ? options.requestTimeoutMs + 10_000 : 15_000;
    const result = await exchange({
      port,
      send: typeof fuzzCase.send === 'function' ? fuzzCase.send : (socket) => void socket.write(fuzzCase.send as Buffer),
      methods: fuzzCase.methods,
      timeoutMs: waitMs,
      headOnlyBelow400: true,
    });
    const notProblems: string[] = [];
    for (const [i, response] of result.responses.entries()) {
      const fault = problemFault(response.status, response.headers.get('content-type')?.[0], fuzzCase.methods[i] === 'HEAD' ? null : response.body);
      if (fault) notProblems.push(`${response.status}: ${fault}`);
    }
    let unanswered: string | null = null;
    if (result.responses.length < fuzzCase.methods.length) {
      const answered = result.responses.length > 0 ? ` (with ${result.responses.map((r) => r.status).join(', ')})` : '';
      const ending = result.ending === 'timeout' ? `was still open after ${waitMs / 1000} s` : `was closed${result.error ? ` (${result.error})` : ''}`;
      unanswered = `${result.responses.length} of ${fuzzCase.methods.length} requests answered${answered}; the connection ${ending}`;
    }
    return { fuzzCase, statuses: result.responses.map((r) => r.status), notProblems, unanswered };
  });

  // Afterwards: the same API process, still serving, the reference job as it was.
  const verdicts: Verdict[] = [];
  const notes: string[] = [];
  const alive = api.alive() && (await fetch(`${api.url}/healthz`).then((r) => r.status === 200).catch(() => false));
  const after = await getJob(api.url, referenceId);
  const referenceFaults: string[] = [];
  if (after?.status !== 'succeeded') referenceFaults.push(`reads ${after?.status ?? 'not found'}`);
  for (const [n, image] of (before.result?.images ?? []).entries()) {
    if (after?.result?.images[n]?.sha256 !== image.sha256) referenceFaults.push(`image ${n} reports another sha256`);
    const served = await fetch(`${api.url}${image.url}`).then(async (r) => sha256(Buffer.from(await r.arrayBuffer())));
    if (served !== image.sha256) referenceFaults.push(`image ${n} serves other bytes`);
  }
  await redis.quit();

  const tally = new Tally();
  for (const always of ['5xx', 'error not problem+json', 'unanswered']) tally.add(always, 0);
  const statuses = new Tally();
  const byFamily = new Map<string, number>();
  let requests = 0;
  let rawRequests = 0;
  let fiveHundreds = 0;
  let notProblems = 0;
  let unanswered = 0;
  const examples = new Map<string, string[]>();
  const example = (kind: string, text: string): void => {
    const list = examples.get(kind) ?? [];
    if (list.length < 6) list.push(text);
    examples.set(kind, list);
  };
  for (const { fuzzCase, statuses: got, notProblems: wrong, unanswered: missing } of outcomes) {
    requests += fuzzCase.methods.length;
    if (fuzzCase.family === 'raw HTTP') rawRequests += fuzzCase.methods.length;
    byFamily.set(fuzzCase.family, (byFamily.get(fuzzCase.family) ?? 0) + fuzzCase.methods.length);
    for (const status of got) {
      statuses.add(String(status));
      if (status >= 500) {
        fiveHundreds += 1;
        tally.add('5xx');
        example('5xx', `${fuzzCase.label}: ${status}`);
      } else if (status >= 400) tally.add('4xx');
      else tally.add(status >= 300 ? '3xx' : status >= 200 ? '2xx' : '1xx');
    }
    for (const fault of wrong) {
      notProblems += 1;
      tally.add('error not problem+json');
      example('not problem+json', `${fuzzCase.label}: ${fault}`);
    }
    if (missing) {
      const missed = fuzzCase.methods.length - got.length;
      unanswered += missed;
      tally.add('unanswered', missed);
      example('unanswered', `${fuzzCase.label}: ${missing}`);
    }
  }
  verdicts.push(
    { ok: requests >= options.requests, text: `requests sent: ${count(requests)} (at least ${count(options.requests)})` },
    { ok: fiveHundreds === 0, text: `5xx answers: ${count(fiveHundreds)} (none allowed)` },
    { ok: notProblems === 0, text: `error answers that are not problem+json with the HTTP status: ${count(notProblems)} (none allowed)` },
    { ok: unanswered === 0, text: `requests left unanswered: ${count(unanswered)} (none allowed)` },
    { ok: alive, text: alive ? 'the API process lived through it and still answers' : 'the API process died or stopped answering' },
    { ok: referenceFaults.length === 0, text: referenceFaults.length === 0 ? 'the job finished before the fuzz reads and serves the same' : `the job finished before the fuzz: ${referenceFaults.join('; ')}` },
  );
  notes.push(`by family: ${[...byFamily].map(([family, n]) => `${family} ${count(n)}`).join(', ')}`);
  notes.push(`statuses: ${statuses.describe()}`);
  for (const [kind, list] of examples) for (const text of list) notes.push(`${kind}: ${text}`);
  return {
    name: 'Fuzz: malformed requests on every route',
    sent: `${count(requests)} requests over a raw socket to ${operations.length} operations (${count(rawRequests)} of them malformed HTTP framing or never finished)`,
    cameBack: tally.describe(),
    verdicts,
    notes,
    seconds: (performance.now() - started) / 1000,
  };
}
