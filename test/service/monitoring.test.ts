import { connectRedis, JobQueue, keys as makeKeys } from '@pixelflow/queue';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { monitoringQueries, scrapeJobs } from '../support/monitoring-files.ts';
import { familyOf, namesInQuery, parseScrape, type ScrapedMetric } from '../support/promql.ts';
import { promtool } from '../support/promtool.ts';
import { postJob, readSse, REDIS_URL, startService, waitForStatus, type TestService } from './support.ts';

// The metrics behind deploy/prometheus and deploy/grafana, on the real API and worker: every
// metric the alert rules and the dashboard query is on a live scrape, with the labels and label
// values they select; the worker's busy gauge follows its jobs; Redis's reachability is reported,
// also by an API that cannot reach it, whose scrape still answers.

let service: TestService;
let api: Map<string, ScrapedMetric>;
let worker: Map<string, ScrapedMetric>;

async function scrape(url: string): Promise<string> {
  const response = await fetch(url);
  expect(response.status, url).toBe(200);
  return response.text();
}

const workerUrl = (): string => `http://127.0.0.1:${service.worker?.metricsPort ?? 0}/metrics`;

/** The value of a label-less series on a scrape. */
function valueOf(text: string, name: string): number {
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!match) throw new Error(`no series ${name}`);
  return Number(match[1]);
}

beforeAll(async () => {
  service = await startService({ worker: true });
  // What a day of traffic leaves behind, in small: a job that succeeds (read by polling, over SSE
  // and as an image), a refused request and a job that fails, so that the labelled series exist.
  const created = (await (await postJob(service.url, { class: 1, num_images: 1, steps: 1 })).json()) as { id: string };
  const done = await waitForStatus(service.url, created.id, ['succeeded']);
  await readSse(await fetch(`${service.url}/jobs/${created.id}/events`));
  const [image] = (done['result'] as { images: { url: string }[] }).images;
  expect((await fetch(`${service.url}${image?.url ?? ''}`)).status).toBe(200);
  expect((await postJob(service.url, { class: 1, steps: 0 })).status).toBe(400);
  // A record the worker cannot read, queued as the API would: it ends failed (worker_error).
  const keys = makeKeys(service.prefix);
  await service.redis.hset(keys.job('broken1'), { id: 'broken1', status: 'queued', model: 'tiny-random', parameters: '{}', attempt: 0, created_at: new Date().toISOString() });
  const queueConnection = connectRedis(REDIS_URL, 'worker', 'monitoring-test-queue');
  const queue = new JobQueue(queueConnection, keys);
  try {
    await queue.add('broken1');
    const deadline = Date.now() + 10_000;
    while ((await service.redis.hget(keys.job('broken1'), 'status')) !== 'failed') {
      if (Date.now() > deadline) throw new Error('the unreadable job did not end failed within 10 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await queue.close();
    queueConnection.disconnect();
  }
  api = parseScrape(await scrape(`${service.url}/metrics`));
  worker = parseScrape(await scrape(workerUrl()));
});
afterAll(async () => {
  await service.stop();
});

describe('the metrics that the alerts and the dashboard query', () => {
  const jobs = scrapeJobs();
  const scrapeOfJob = (job: string): Map<string, ScrapedMetric> | undefined => ({ 'pixelflow-api': api, 'pixelflow-worker': worker })[job];

  it('scrape jobs are the API, the worker and Prometheus itself', () => {
    expect(jobs.sort()).toEqual(['pixelflow-api', 'pixelflow-worker', 'prometheus']);
  });

  it('are on the live scrapes, with the labels and label values they select and group by', () => {
    const queries = monitoringQueries();
    expect(queries.length).toBeGreaterThan(10);
    let checked = 0;
    for (const { where, expr } of queries) {
      const { selectors, groupingLabels } = namesInQuery(expr);
      expect(selectors.length, where).toBeGreaterThan(0);
      // Labels the query may group or match on: what its series carry, and the target's own.
      const available = new Set(['job', 'instance']);
      for (const selector of selectors) {
        const what = `${where}: ${selector.name ?? '{...}'}`;
        expect(selector.name, what).not.toBeNull();
        const jobMatchers = selector.matchers.filter((m) => m.label === 'job');
        for (const matcher of jobMatchers) {
          const named = matcher.op === '=' ? jobs.filter((j) => j === matcher.value) : matcher.op === '=~' ? jobs.filter((j) => new RegExp(`^(?:${matcher.value})$`).test(j)) : jobs;
          expect(named.length, `${what}: job ${matcher.op} "${matcher.value}" names a scrape job`).toBeGreaterThan(0);
        }
        if (selector.name === 'up') {
          // Prometheus's own series, one per target: which targets must be said.
          expect(jobMatchers.length, what).toBeGreaterThan(0);
          continue;
        }
        const job = jobMatchers.find((m) => m.op === '=')?.value;
        const scrapes = job ? [scrapeOfJob(job)] : [api, worker];
        const family = scrapes.map((s) => (s ? familyOf(selector.name as string, s) : undefined)).find(Boolean);
        expect(family, `${what} is on the ${job ?? 'API or worker'} scrape`).toBeDefined();
        const samples = family?.samples.filter((s) => s.name === selector.name) ?? [];
        expect(samples.length, `${what} has series`).toBeGreaterThan(0);
        for (const sample of samples) for (const label of Object.keys(sample.labels)) available.add(label);
        for (const matcher of selector.matchers.filter((m) => !['job', 'instance', '__name__'].includes(m.label))) {
          const values = samples.map((s) => s.labels[matcher.label]).filter((v) => v !== undefined);
          expect(values.length, `${what} has label ${matcher.label}`).toBeGreaterThan(0);
          if (matcher.op === '=') expect(values, `${what}: ${matcher.label}="${matcher.value}"`).toContain(matcher.value);
        }
        checked += 1;
      }
      for (const label of groupingLabels) expect([...available], `${where}: by/on (${label})`).toContain(label);
    }
    expect(checked).toBeGreaterThan(queries.length / 2);
  });
});

describe('pixelflow_worker_busy', () => {
  it('is 1 while the worker runs a job and 0 once it is idle again', async () => {
    expect(valueOf(await scrape(workerUrl()), 'pixelflow_worker_busy')).toBe(0);
    // Long enough to be seen running: 8 images, 100 steps a stage on the tiny model.
    const created = (await (await postJob(service.url, { class: 2, num_images: 8, steps: 100 })).json()) as { id: string };
    await waitForStatus(service.url, created.id, ['running']);
    const during = await scrape(workerUrl());
    expect(valueOf(during, 'pixelflow_worker_busy')).toBe(1);
    expect(valueOf(during, 'pixelflow_jobs_running')).toBe(1);
    await waitForStatus(service.url, created.id, ['succeeded'], 60_000);
    await expect.poll(async () => valueOf(await scrape(workerUrl()), 'pixelflow_worker_busy'), { timeout: 5000, interval: 50 }).toBe(0);
    expect(valueOf(await scrape(workerUrl()), 'pixelflow_worker_ready')).toBe(1);
  });
});

describe('pixelflow_redis_up', () => {
  it('is 1 on the API and the worker while Redis answers', async () => {
    expect(valueOf(await scrape(`${service.url}/metrics`), 'pixelflow_redis_up')).toBe(1);
    expect(valueOf(await scrape(workerUrl()), 'pixelflow_redis_up')).toBe(1);
  });

  it('is 0 on an API that cannot reach Redis, whose scrape still answers, without queue series, and passes promtool', async () => {
    const down = await startService({ worker: false, env: { REDIS_URL: 'redis://127.0.0.1:1' } });
    try {
      const text = await scrape(`${down.url}/metrics`);
      expect(valueOf(text, 'pixelflow_redis_up')).toBe(0);
      expect(parseScrape(text).get('pixelflow_queue_jobs')).toEqual({ type: 'gauge', samples: [] });
      expect(await promtool(['check', 'metrics'], text)).toEqual({ code: 0, output: '' });
    } finally {
      await down.stop();
    }
  });
});
