import type { Socket } from 'node:net';
import { count, Tally, type CheckReport, type Verdict } from '../report.ts';
import { exchange, problemFault, sleep, write, type RawExchange } from '../raw-http.ts';
import type { Deployment } from '../services.ts';

// Clients that never finish sending: `sockets` connections that announce a 100-byte body and send
// 5 bytes, `trickles` that send a body a byte a second, and as many that send their headers a
// byte a second. The API is started with REQUEST_TIMEOUT_MS and HEADERS_TIMEOUT_MS (services/api/
// src/config.ts) and must answer each with a 408 problem and close it within its timeout, plus
// the slack of Node's connection check (at most a second) and of this loaded 2-core machine. While
// they are held open, a normal request must still be answered.

export interface SlowBodyOptions {
  sockets: number;
  trickles: number;
  requestTimeoutMs: number;
  headersTimeoutMs: number;
}

/** Beyond the configured timeout: Node checks connections every min(1 s, HEADERS_TIMEOUT_MS / 4), and the machine is shared. */
const SLACK_MS = 2500;

interface Kind {
  name: string;
  timeoutMs: number;
  send: (socket: Socket) => Promise<void>;
}

export async function runSlowBodies(deployment: Deployment, options: SlowBodyOptions): Promise<CheckReport> {
  const started = performance.now();
  const api = await deployment.startApi({ REQUEST_TIMEOUT_MS: String(options.requestTimeoutMs), HEADERS_TIMEOUT_MS: String(options.headersTimeoutMs) });
  const head = (length: number): string => `POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;
  // Long enough to outlast the timeout at a byte a second.
  const trickleBytes = Math.ceil(options.requestTimeoutMs / 1000) + 10;
  const partial: Kind = {
    name: 'Content-Length 100, 5 bytes sent',
    timeoutMs: options.requestTimeoutMs,
    send: async (socket) => void (await write(socket, `${head(100)}{"cla`)),
  };
  const trickleBody: Kind = {
    name: 'body at 1 byte/s',
    timeoutMs: options.requestTimeoutMs,
    send: async (socket) => {
      await write(socket, head(trickleBytes));
      for (let i = 0; i < trickleBytes && !socket.destroyed; i++) {
        await sleep(1000);
        await write(socket, ' ');
      }
    },
  };
  const trickleHeaders: Kind = {
    name: 'headers at 1 byte/s',
    timeoutMs: options.headersTimeoutMs,
    send: async (socket) => {
      for (const byte of `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ${'a'.repeat(Math.ceil(options.headersTimeoutMs / 1000) + 10)}\r\n\r\n`) {
        if (socket.destroyed) return;
        await write(socket, byte);
        await sleep(1000);
      }
    },
  };
  const kinds: Kind[] = [
    ...Array.from({ length: options.sockets }, () => partial),
    ...Array.from({ length: options.trickles }, () => trickleBody),
    ...Array.from({ length: options.trickles }, () => trickleHeaders),
  ];
  const waitMs = options.requestTimeoutMs + 15_000;
  const held = kinds.map((kind) => exchange({ port: api.port, send: kind.send, methods: ['POST'], timeoutMs: waitMs, untilClosed: true }).then((result) => ({ kind, result })));
  // While they hang: does the API still serve?
  await sleep(Math.min(1000, options.headersTimeoutMs / 2));
  const probeStarted = performance.now();
  const probe = await fetch(`${api.url}/healthz`, { signal: AbortSignal.timeout(10_000) })
    .then((r) => r.status)
    .catch(() => 0);
  const probeMs = performance.now() - probeStarted;
  const results: { kind: Kind; result: RawExchange }[] = await Promise.all(held);

  const tally = new Tally();
  const late: string[] = [];
  const faults: string[] = [];
  const slowest = new Map<string, number>();
  for (const { kind, result } of results) {
    const response = result.responses[0];
    const closed = result.ending === 'closed';
    slowest.set(kind.name, Math.max(slowest.get(kind.name) ?? 0, result.ms));
    if (!closed) tally.add('still open');
    else if (!response) tally.add('closed without an answer');
    else tally.add(`${response.status} ${response.headers.get('content-type')?.[0]?.split(';')[0] ?? 'no content-type'}`);
    if (!closed) faults.push(`${kind.name}: still open after ${(waitMs / 1000).toFixed(0)} s`);
    else if (result.ms > kind.timeoutMs + SLACK_MS) late.push(`${kind.name}: closed after ${(result.ms / 1000).toFixed(1)} s`);
    if (closed && !response) faults.push(`${kind.name}: closed without an answer${result.error ? ` (${result.error})` : ''}`);
    if (response) {
      const fault = response.status !== 408 ? `answered ${response.status}, not 408` : problemFault(response.status, response.headers.get('content-type')?.[0], response.body);
      if (fault) faults.push(`${kind.name}: ${fault}`);
    }
  }
  const verdicts: Verdict[] = [
    { ok: late.length === 0 && !faults.some((f) => f.includes('still open')), text: `closed within the timeout (+${SLACK_MS / 1000} s): ${count(results.length - late.length - tally.get('still open'))} of ${count(results.length)}` },
    { ok: faults.length === 0, text: `answered with a 408 problem+json before closing: ${count(tally.get('408 application/problem+json'))} of ${count(results.length)}` },
    { ok: probe === 200, text: `GET /healthz while they hang: ${probe === 0 ? 'no answer' : probe} in ${probeMs.toFixed(0)} ms` },
  ];
  const notes = [
    `REQUEST_TIMEOUT_MS ${options.requestTimeoutMs}, HEADERS_TIMEOUT_MS ${options.headersTimeoutMs}; slowest close: ${[...slowest].map(([name, ms]) => `${name} ${(ms / 1000).toFixed(1)} s`).join(', ')}`,
    ...late.slice(0, 5),
    ...faults.slice(0, 5),
  ];
  return {
    name: 'Slow bodies: partial and trickled requests',
    sent: `${count(options.sockets)} sockets with 5 of 100 body bytes, ${options.trickles} trickling the body and ${options.trickles} the headers at 1 byte/s`,
    cameBack: tally.describe(),
    verdicts,
    notes,
    seconds: (performance.now() - started) / 1000,
  };
}
