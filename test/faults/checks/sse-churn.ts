import { readdir, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { count, Tally, type CheckReport, type Verdict } from '../report.ts';
import { eventCounts, scrape, submit, waitFinished } from '../jobs.ts';
import type { Random } from '../random.ts';
import { problemFault, request, sleep } from '../raw-http.ts';
import { metricValue, type ApiProcess, type Deployment } from '../services.ts';

// Event streams opened and dropped by the hundred, every way a client goes: after the stream's
// head, after a heartbeat, before any answer, with a reset, and streams the server must end itself
// (a finished job replayed, one resumed after its final event) or refuse (an unknown job, a
// Last-Event-ID Redis cannot read: a 404 and a 400 problem). Afterwards the API
// must hold what it held before: no open streams (pixelflow_sse_streams), no more file descriptors
// (/proc/<pid>/fd) and about the same memory: what its JavaScript holds after a full garbage
// collection (heap-probe.mjs), which a leak of a listener or a buffer per stream moves and the
// collector's timing does not. The baseline is taken after a first wave, so that what any first
// use allocates for good does not count as a leak.

export interface SseChurnOptions {
  streams: number;
}

/** Streams open at once, per wave. */
const WAVE = 100;
/** Descriptors the API may hold beyond the baseline: a connection of ours still closing. */
const FD_SLACK = 3;
/**
 * What the API's live memory (JavaScript heap and external buffers, after a full collection) may
 * have grown by, in MiB. Compiled code, inline caches and pooled buffers settle over the first
 * waves and then stay: +0.9 MiB after 900 streams, +1.5 after 3,000 and +1.0 after 9,000 (one run
 * each, 2-core VM), so the growth is bounded, not per stream. A leak of ~4 KiB per stream (a socket,
 * a buffer, a listener holding a request) adds 3.5 MiB over the full run's 900 streams and fails.
 */
const HEAP_SLACK_MIB = 3;
const MIB = 1024 * 1024;

type Mode =
  | 'dropped after the head'
  | 'closed after a heartbeat'
  | 'dropped before the answer'
  | 'reset after the head'
  | 'finished job replayed'
  | 'resumed after the final event'
  | 'unknown job'
  | 'Last-Event-ID past 64 bits';

const MODES: readonly Mode[] = [
  'dropped after the head',
  'dropped after the head',
  'closed after a heartbeat',
  'dropped before the answer',
  'reset after the head',
  'finished job replayed',
  'resumed after the final event',
  'unknown job',
  'Last-Event-ID past 64 bits',
];

/** Streams that must be refused, with the status of their problem. */
const REFUSED = new Map<Mode, number>([
  ['unknown job', 404],
  ['Last-Event-ID past 64 bits', 400],
]);

/** Modes the client ends; in the others the server must. */
const CLIENT_ENDS = new Set<Mode>(['dropped after the head', 'closed after a heartbeat', 'dropped before the answer', 'reset after the head']);

interface StreamResult {
  mode: Mode;
  outcome: string;
  fault: string | null;
}

async function openDescriptors(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

/** RSS in MiB, reported beside the heap for whoever reads the report; not a verdict. */
async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? NaN) / 1024;
}

/** Live memory after a full collection, in MiB: heap and memory held outside it (buffers). */
async function liveMiB(api: ApiProcess): Promise<number> {
  const heap = await api.heapAfterGc();
  return (heap.heapUsed + heap.external) / MIB;
}

/**
 * One stream: connects, asks for `path`, and goes as `mode` says. `held` resolves once the stream
 * is open (or never will be); the client-side drop waits for `release`.
 */
function stream(port: number, path: string, headers: [string, string][], mode: Mode, release: Promise<void>, held: () => void): Promise<StreamResult> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let text = '';
    let done = false;
    let signalled = false;
    const signal = (): void => {
      if (!signalled) held();
      signalled = true;
    };
    const finish = (outcome: string, fault: string | null = null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal();
      resolve({ mode, outcome, fault });
    };
    // Streams the server must end get 10 s; those the client holds wait for the wave's release.
    const timer = setTimeout(() => {
      finish('still open', `${mode}: the server had not ended it after 10 s`);
      socket.destroy();
    }, 10_000 + (CLIENT_ENDS.has(mode) ? 20_000 : 0));
    socket.on('error', () => undefined);
    // What the server sent, judged once it ended the response (or the connection).
    const judge = (): void => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const refusal = REFUSED.get(mode);
      if (refusal !== undefined) {
        const [head = '', body = ''] = text.split('\r\n\r\n');
        const fault = status === refusal ? problemFault(status, /content-type: ([^\r\n]*)/i.exec(head)?.[1], body) : `answered ${status}, not ${refusal}`;
        return finish(status ? `${status} ${mode}` : 'closed without an answer', fault && `${mode}: ${fault}`);
      }
      if (CLIENT_ENDS.has(mode)) return finish('dropped by the client');
      const events = text.match(/^event: /gm)?.length ?? 0;
      if (status !== 200) return finish(`${status}`, `${mode}: answered ${status}`);
      if (mode === 'resumed after the final event' && events > 0) return finish('ended by the server', `${mode}: ${events} events sent after the final one`);
      if (mode === 'finished job replayed' && !/^event: (succeeded|failed|canceled)$/m.test(text)) return finish('ended by the server', `${mode}: ended without the final event`);
      finish('ended by the server');
    };
    socket.on('close', judge);
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (!CLIENT_ENDS.has(mode)) {
        // The response's end: a problem's whole body, or the stream's last chunk (the connection stays open, as EventSource keeps it).
        const length = Number(/content-length: (\d+)/i.exec(text)?.[1] ?? NaN);
        const headEnd = text.indexOf('\r\n\r\n');
        if (text.endsWith('\r\n0\r\n\r\n') || (headEnd >= 0 && text.length - headEnd - 4 >= length)) {
          judge();
          socket.destroy();
        }
        return;
      }
      if (mode === 'dropped after the head' && text.includes('retry:')) {
        signal();
        void release.then(() => socket.destroy());
      } else if (mode === 'reset after the head' && text.includes('retry:')) {
        signal();
        void release.then(() => socket.resetAndDestroy());
      } else if (mode === 'closed after a heartbeat' && text.includes(': heartbeat')) {
        signal();
        void release.then(() => socket.end());
      }
    });
    socket.once('connect', () => {
      socket.write(request('GET', path, [['Accept', 'text/event-stream'], ...headers, ['Connection', 'keep-alive']]));
      if (mode === 'dropped before the answer') {
        socket.destroy();
        finish('dropped by the client');
      } else if (!CLIENT_ENDS.has(mode)) signal();
    });
  });
}

export async function runSseChurn(deployment: Deployment, random: Random, options: SseChurnOptions): Promise<CheckReport> {
  const started = performance.now();
  const api = await deployment.startApi({ SSE_HEARTBEAT_MS: '1000' }, { heapProbe: true });
  // A finished job, whose stream the server ends, and a queued one (no worker left), whose stream stays open.
  const worker = await deployment.startWorker();
  const finished = await submit(api.url, { class: 1, num_images: 1, steps: 1, seed: 1 });
  if (!finished.id) throw new Error(`a job was refused (${finished.status})`);
  await waitFinished(api.url, [finished.id], 60_000);
  await worker.stop('SIGTERM');
  const queued = await submit(api.url, { class: 2, num_images: 1, steps: 1, seed: 2 });
  if (!queued.id) throw new Error(`a job was refused (${queued.status})`);
  const redis = deployment.redisClient();
  const finalId = (await eventCounts(redis, deployment.prefix, finished.id)).lastId ?? '0-0';
  await redis.quit();

  const target = (mode: Mode): { path: string; headers: [string, string][] } => {
    if (mode === 'finished job replayed') return { path: `/jobs/${finished.id}/events`, headers: [] };
    if (mode === 'resumed after the final event') return { path: `/jobs/${finished.id}/events`, headers: [['Last-Event-ID', finalId]] };
    if (mode === 'unknown job') return { path: `/jobs/j${'0'.repeat(24)}/events`, headers: [] };
    if (mode === 'Last-Event-ID past 64 bits') return { path: `/jobs/${queued.id}/events`, headers: [['Last-Event-ID', '18446744073709551616-0']] };
    return { path: `/jobs/${queued.id}/events`, headers: [] };
  };
  const openStreams = async (): Promise<number | null> => metricValue(await scrape(api.url), 'pixelflow_sse_streams');
  let peak = 0;
  const wave = async (size: number): Promise<StreamResult[]> => {
    let release = (): void => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const ready: Promise<void>[] = [];
    const results: Promise<StreamResult>[] = [];
    for (let i = 0; i < size; i++) {
      const mode = random.pick(MODES);
      const { path, headers } = target(mode);
      let held = (): void => undefined;
      ready.push(new Promise<void>((resolve) => (held = resolve)));
      results.push(stream(api.port, path, headers, mode, released, held));
    }
    await Promise.race([Promise.all(ready), sleep(15_000)]);
    peak = Math.max(peak, (await openStreams()) ?? 0);
    release();
    return Promise.all(results);
  };

  // Warm-up, then the baseline.
  await wave(Math.min(WAVE, 50));
  await sleep(1500);
  const baseStreams = await openStreams();
  const base = { fds: await openDescriptors(api.pid), liveMiB: await liveMiB(api), rssMiB: await rssMiB(api.pid) };

  const tally = new Tally();
  const faults: string[] = [];
  for (let sent = 0; sent < options.streams; sent += WAVE) {
    for (const result of await wave(Math.min(WAVE, options.streams - sent))) {
      tally.add(`${result.outcome}`);
      if (result.fault) faults.push(result.fault);
    }
  }

  // Back to the baseline: the gauge at once (streams end when their sockets close), descriptors
  // soon, then memory (read once the streams are gone, so that none of theirs is still in use).
  let streamsAfter: number | null = null;
  let fdsAfter = base.fds;
  const deadline = Date.now() + 15_000;
  for (;;) {
    streamsAfter = await openStreams();
    fdsAfter = await openDescriptors(api.pid);
    if ((streamsAfter === baseStreams && fdsAfter <= base.fds + FD_SLACK) || Date.now() > deadline) break;
    await sleep(500);
  }
  const after = { fds: fdsAfter, liveMiB: await liveMiB(api), rssMiB: await rssMiB(api.pid) };
  const verdicts: Verdict[] = [
    { ok: streamsAfter === baseStreams && baseStreams !== null, text: `open streams after the churn: ${streamsAfter ?? 'unknown'} (baseline ${baseStreams ?? 'unknown'}; ${peak} at the busiest moment)` },
    { ok: after.fds <= base.fds + FD_SLACK, text: `API file descriptors: ${after.fds} (baseline ${base.fds}, at most +${FD_SLACK})` },
    {
      ok: after.liveMiB <= base.liveMiB + HEAP_SLACK_MIB,
      text: `API memory after a full GC (heap + buffers): ${after.liveMiB.toFixed(1)} MiB (baseline ${base.liveMiB.toFixed(1)} MiB, at most +${HEAP_SLACK_MIB}); RSS ${after.rssMiB.toFixed(0)} MiB (baseline ${base.rssMiB.toFixed(0)})`,
    },
    { ok: faults.length === 0, text: `streams that ended wrongly (a finished job's stream left open, a refusal not a problem): ${faults.length}` },
    { ok: peak > 0, text: `streams seen open at once by the API during a wave: ${peak}` },
  ];
  return {
    name: `SSE churn: ${count(options.streams)} event streams opened and dropped`,
    sent: `${count(options.streams)} streams in waves of ${WAVE} (after a warm-up of ${Math.min(WAVE, 50)})`,
    cameBack: tally.describe(),
    verdicts,
    notes: [...new Set(faults)].slice(0, 8),
    seconds: (performance.now() - started) / 1000,
  };
}
