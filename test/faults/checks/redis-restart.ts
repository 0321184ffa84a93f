import type { Job } from '@pixelflow/schemas';
import { count, plural, Tally, type CheckReport, type Verdict } from '../report.ts';
import { checkImages, eventCounts, modelShape, randomGeneration, scrape, submit, waitFinished } from '../jobs.ts';
import type { Random } from '../random.ts';
import { problemFault, sleep } from '../raw-http.ts';
import type { SuiteRedis } from '../redis.ts';
import { metricValue, type Deployment } from '../services.ts';

// Redis SIGKILLed mid-load and started again on the same port and append-only file, while jobs
// are being submitted and run. What the API accepted (202) is in the AOF, so every accepted job
// must still finish, once, with its images as reported; a submission during the outage must be
// refused with a problem (503 and Retry-After), never left hanging or answered 5xx otherwise; and
// while Redis is down, the routes that need it answer so at once, before it is back.

export interface RedisRestartOptions {
  jobs: number;
  outageMs: number;
}


/** After the kill, before the first probes: the services' connections have seen Redis go. */
const PROBE_AFTER_MS = 300;
/** Between rounds of probes: ioredis waits longer between reconnections as an outage goes on. */
const PROBE_EVERY_MS = 1000;

interface Probe {
  what: string;
  path: (jobId: string | undefined) => string;
  /** What the answer must be while Redis is down; null when it is. */
  judge: (status: number, contentType: string | null, body: string, retryAfter: string | null) => string | null;
}

const unavailable = (status: number, contentType: string | null, body: string, retryAfter: string | null): string | null => {
  if (status !== 503) return `answered ${status}, not 503`;
  return problemFault(status, contentType ?? undefined, body) ?? (/^\d+$/.test(retryAfter ?? '') ? null : 'no Retry-After');
};

/**
 * Routes that read Redis must say at once that it is away (503 problem with Retry-After), not wait
 * for it; /metrics must still be scraped, saying pixelflow_redis_up 0; /healthz needs no Redis.
 */
const PROBES: Probe[] = [
  { what: 'GET /models', path: () => '/models', judge: unavailable },
  { what: 'GET /readyz', path: () => '/readyz', judge: unavailable },
  { what: 'GET /jobs/{id}', path: (id) => `/jobs/${id ?? `j${'0'.repeat(24)}`}`, judge: unavailable },
  {
    what: 'GET /metrics',
    path: () => '/metrics',
    judge: (status, _type, body) => (status !== 200 ? `answered ${status}` : metricValue(body, 'pixelflow_redis_up') === 0 ? null : `pixelflow_redis_up is ${metricValue(body, 'pixelflow_redis_up')}, not 0`),
  },
  { what: 'GET /healthz', path: () => '/healthz', judge: (status) => (status === 200 ? null : `answered ${status}`) },
];

interface ProbeResult {
  probe: Probe;
  status: number;
  ms: number;
  answeredAt: number | null;
  fault: string | null;
}

async function probeDuringOutage(url: string, probe: Probe, jobId: string | undefined): Promise<ProbeResult> {
  const sent = performance.now();
  try {
    const response = await fetch(`${url}${probe.path(jobId)}`, { signal: AbortSignal.timeout(15_000) });
    const body = await response.text();
    const answeredAt = performance.now();
    const fault = probe.judge(response.status, response.headers.get('content-type'), body, response.headers.get('retry-after'));
    return { probe, status: response.status, ms: answeredAt - sent, answeredAt, fault };
  } catch (error) {
    return { probe, status: 0, ms: performance.now() - sent, answeredAt: null, fault: (error as Error).message };
  }
}

export async function runRedisRestart(deployment: Deployment, redis: SuiteRedis, random: Random, options: RedisRestartOptions): Promise<CheckReport> {
  const started = performance.now();
  const api = await deployment.startApi();
  const worker = await deployment.startWorker({ LOCK_DURATION_MS: '2000', STALLED_INTERVAL_MS: '1000' });
  const shape = await modelShape(api.url);
  // Submissions spread over three outages' time: a third before the kill, a third during, a third after the restart.
  const submitEveryMs = Math.max(50, Math.round((3 * options.outageMs) / options.jobs));

  const tally = new Tally();
  const faults: string[] = [];
  const accepted: string[] = [];
  let attempts = 0;
  let outage: { killedAt: number; back: number } | null = null;
  let killed = false;
  let busyAtKill: number | null = null;
  let queuedAtKill: number | null = null;
  const probes: (ProbeResult & { beforeRestart: boolean })[] = [];
  const submitting = (async () => {
    for (let i = 0; i < options.jobs; i++) {
      attempts += 1;
      const answer = await submit(api.url, randomGeneration(random, shape, { min: 20, max: 80 })).catch((error: unknown) => ({ status: 0, id: null, fault: (error as Error).message, retryAfter: null, problemType: null }));
      if (answer.status === 202 && answer.id) {
        accepted.push(answer.id);
        tally.add('202 accepted');
      } else {
        tally.add(answer.status === 0 ? 'no answer' : `${answer.status} ${answer.problemType?.replace('/problems/', '') ?? ''}`.trim());
        if (answer.fault) faults.push(`a refused submission: ${answer.status} ${answer.fault}`);
        else if (answer.status !== 503) faults.push(`a submission answered ${answer.status} ${answer.problemType ?? ''}`);
        else if (!/^\d+$/.test(answer.retryAfter ?? '')) faults.push('a 503 without Retry-After in seconds');
      }
      await sleep(submitEveryMs);
    }
  })();
  const killing = (async () => {
    // A third of the load in, with the worker busy.
    while (attempts < options.jobs / 3) await sleep(20);
    for (let i = 0; i < 100 && ((await worker.running()) ?? 0) === 0; i++) await sleep(20);
    busyAtKill = await worker.running();
    queuedAtKill = metricValue(await scrape(api.url), 'pixelflow_queue_jobs{state="waiting"}');
    const killedAt = performance.now();
    await redis.kill();
    killed = true;
    const rounds: Promise<ProbeResult[]>[] = [];
    for (let at = PROBE_AFTER_MS; at === PROBE_AFTER_MS || at < options.outageMs - PROBE_AFTER_MS; at += PROBE_EVERY_MS) {
      rounds.push(sleep(at).then(() => Promise.all(PROBES.map((probe) => probeDuringOutage(api.url, probe, accepted[0])))));
    }
    await sleep(options.outageMs);
    const restartedAt = performance.now();
    await redis.restart();
    outage = { killedAt, back: performance.now() };
    for (const result of (await Promise.all(rounds)).flat()) probes.push({ ...result, beforeRestart: result.answeredAt !== null && result.answeredAt < restartedAt });
  })();
  await Promise.all([submitting, killing]);

  // The API and the worker find Redis again on their own.
  let readyAfterMs: number | null = null;
  const backAt = performance.now();
  for (let i = 0; i < 300; i++) {
    if ((await fetch(`${api.url}/readyz`).then((r) => r.status).catch(() => 0)) === 200) {
      readyAfterMs = performance.now() - backAt;
      break;
    }
    await sleep(100);
  }
  const final = await waitFinished(api.url, accepted, 60_000 + accepted.length * 3_000);
  const client = deployment.redisClient();
  const ended = new Tally();
  let succeeded = 0;
  let imageFaults = 0;
  let finalFaults = 0;
  for (const id of accepted) {
    const view: Job | null | undefined = final.get(id);
    ended.add(view?.status ?? 'not found');
    if (view?.status === 'succeeded') {
      succeeded += 1;
      const images = await checkImages(api.url, deployment, view);
      imageFaults += images.faults.length;
      faults.push(...images.faults);
    } else faults.push(`${id}: ${view?.status ?? 'not found'}${view?.error ? ` (${view.error.type}: ${view.error.message})` : ''}`);
    const events = await eventCounts(client, deployment.prefix, id);
    if (events.finals !== 1) {
      finalFaults += 1;
      faults.push(`${id}: ${events.finals} final events`);
    }
  }
  await client.quit();
  const o = outage as { killedAt: number; back: number } | null;
  const verdicts: Verdict[] = [
    { ok: killed && o !== null, text: o ? `redis-server SIGKILLed with ${plural(busyAtKill ?? 0, 'job')} running and ${plural(queuedAtKill ?? 0, 'job')} waiting, restarted on its AOF after ${((o.back - o.killedAt) / 1000).toFixed(1)} s` : 'Redis was not restarted' },
    { ok: readyAfterMs !== null, text: readyAfterMs === null ? '/readyz not 200 within 30 s of the restart' : `/readyz 200 again ${(readyAfterMs / 1000).toFixed(1)} s after the restart` },
    { ok: succeeded === accepted.length, text: `accepted jobs that succeeded: ${count(succeeded)} of ${count(accepted.length)} (${ended.describe()})` },
    { ok: finalFaults === 0, text: `accepted jobs with other than one final event: ${finalFaults}` },
    { ok: imageFaults === 0, text: `image faults (sha256 on disk or served, missing files): ${imageFaults}` },
    { ok: !faults.some((f) => f.startsWith('a ')), text: `refusals that are not a 503 problem+json with Retry-After: ${faults.filter((f) => f.startsWith('a ')).length}` },
    ...PROBES.map((probe): Verdict => {
      const sent = probes.filter((p) => p.probe === probe);
      const wrong = sent.filter((p) => !p.beforeRestart || p.fault !== null);
      const slowest = Math.max(...sent.map((p) => p.ms));
      const first = wrong[0];
      const why = first ? `; ${first.answeredAt === null ? 'no answer' : `${first.status} after ${first.ms.toFixed(0)} ms${first.beforeRestart ? '' : ', once Redis was back'}`}${first.fault ? ` (${first.fault})` : ''}` : '';
      return { ok: sent.length > 0 && wrong.length === 0, text: `${probe.what} while Redis is down: ${sent.length - wrong.length} of ${sent.length} answered as they should before it was back (slowest ${slowest.toFixed(0)} ms)${why}` };
    }),
  ];
  return {
    name: 'Redis SIGKILL and AOF restart mid-load',
    sent: `${count(attempts)} POST /jobs, one every ${submitEveryMs} ms; redis-server killed after a third, down ${(options.outageMs / 1000).toFixed(1)} s`,
    cameBack: tally.describe(),
    verdicts,
    notes: faults.slice(0, 8),
    seconds: (performance.now() - started) / 1000,
  };
}
