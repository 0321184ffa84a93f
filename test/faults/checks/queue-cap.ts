import { metricValue } from '../services.ts';
import { count, Tally, type CheckReport, type Verdict } from '../report.ts';
import { scrape, submit, type Submitted } from '../jobs.ts';
import type { Deployment } from '../services.ts';

// QUEUE_CAP under a race: with no worker, so nothing leaves the queue, `posts` valid submissions
// arrive at once, `rounds` times. Admission is one decision per request against a count in Redis,
// so exactly `cap` must be accepted each round (more breaks the cap; fewer refuses jobs the queue
// has room for), the queue must then hold exactly those, and every refusal must be a queue-full
// problem with Retry-After. Between rounds the accepted jobs are canceled, which must free their
// places for the next round.

export interface QueueCapOptions {
  cap: number;
  posts: number;
  rounds: number;
}

async function waiting(url: string): Promise<number | null> {
  return metricValue(await scrape(url), 'pixelflow_queue_jobs{state="waiting"}');
}

export async function runQueueCap(deployment: Deployment, options: QueueCapOptions): Promise<CheckReport> {
  const started = performance.now();
  const api = await deployment.startApi({ QUEUE_CAP: String(options.cap) });
  const tally = new Tally();
  const notes: string[] = [];
  const perRound: number[] = [];
  const depthFaults: string[] = [];
  const refusalFaults: string[] = [];
  let cancelFaults = 0;
  const want = Math.min(options.cap, options.posts);
  for (let round = 0; round < options.rounds; round++) {
    const answers: Submitted[] = await Promise.all(Array.from({ length: options.posts }, (_, i) => submit(api.url, { class: i % 10, num_images: 1, steps: 1, seed: round * options.posts + i })));
    const accepted = answers.filter((a) => a.status === 202 && a.id !== null);
    perRound.push(accepted.length);
    for (const answer of answers) {
      tally.add(answer.status === 202 ? '202 accepted' : answer.status === 503 && answer.problemType === '/problems/queue-full' ? '503 queue-full' : `${answer.status} ${answer.problemType ?? ''}`.trim());
      if (answer.status !== 202) {
        if (answer.fault) refusalFaults.push(`round ${round + 1}: ${answer.status} ${answer.fault}`);
        else if (answer.status !== 503 || answer.problemType !== '/problems/queue-full') refusalFaults.push(`round ${round + 1}: ${answer.status} ${answer.problemType}`);
        else if (!/^\d+$/.test(answer.retryAfter ?? '')) refusalFaults.push(`round ${round + 1}: queue-full without a Retry-After in seconds (${JSON.stringify(answer.retryAfter)})`);
      }
    }
    const depth = await waiting(api.url);
    if (depth !== accepted.length) depthFaults.push(`round ${round + 1}: ${accepted.length} accepted, the queue holds ${depth ?? 'unknown'}`);
    // Cancel them all, so that the next round races for the whole cap again.
    const cancels = await Promise.all(accepted.map(async (a) => (await fetch(`${api.url}/jobs/${a.id}`, { method: 'DELETE' })).status));
    cancelFaults += cancels.filter((status) => status !== 200).length;
    const left = await waiting(api.url);
    if (left !== 0) depthFaults.push(`round ${round + 1}: after canceling every accepted job the queue holds ${left ?? 'unknown'}`);
  }
  const over = perRound.filter((n) => n > options.cap).length;
  const under = perRound.filter((n) => n < want).length;
  const verdicts: Verdict[] = [
    { ok: over === 0, text: `rounds with more than the cap accepted: ${over} (accepted per round: ${perRound.join(', ')}; cap ${options.cap})` },
    { ok: under === 0, text: `rounds that refused jobs with room in the queue: ${under}` },
    { ok: depthFaults.length === 0, text: `queue depth equal to the jobs accepted, and 0 once they are canceled: ${depthFaults.length === 0 ? 'yes' : `no (${depthFaults.length})`}` },
    { ok: refusalFaults.length === 0, text: `refusals that are not a queue-full problem+json with Retry-After: ${refusalFaults.length}` },
    { ok: cancelFaults === 0, text: `cancels of accepted (queued) jobs not answered 200: ${cancelFaults}` },
  ];
  notes.push(...depthFaults.slice(0, 5), ...refusalFaults.slice(0, 5));
  return {
    name: `Queue cap race: ${options.posts} concurrent POSTs at QUEUE_CAP ${options.cap}, no worker`,
    sent: `${count(options.posts * options.rounds)} POST /jobs in ${options.rounds} rounds of ${options.posts} at once`,
    cameBack: tally.describe(),
    verdicts,
    notes,
    seconds: (performance.now() - started) / 1000,
  };
}
