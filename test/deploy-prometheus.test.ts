import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { REDIS_SCRAPE_TIMEOUT_MS as API_REDIS_TIMEOUT_MS } from '../services/api/src/metrics.ts';
import { REDIS_SCRAPE_TIMEOUT_MS as WORKER_REDIS_TIMEOUT_MS } from '../services/worker/src/metrics.ts';
import { REPO } from '../scripts/compiled.mjs';
import { promtool } from './support/promtool.ts';

// deploy/prometheus as Prometheus reads it: promtool (Debian's, which CI installs; missing, these
// tests fail) accepts the scrape config and the alert rules, and the rules' unit tests pass; the
// scrape config finds every replica of the Compose services where they listen.

const DIR = join(REPO, 'deploy', 'prometheus');

interface ScrapeConfig {
  job_name: string;
  metrics_path?: string;
  scrape_timeout?: string;
  dns_sd_configs?: { names: string[]; type: string; port: number }[];
}
interface PrometheusConfig {
  global: { scrape_interval: string; scrape_timeout?: string };
  rule_files: string[];
  scrape_configs: ScrapeConfig[];
}
interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleTest {
  alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[];
}

const config = parse(readFileSync(join(DIR, 'prometheus.yml'), 'utf8')) as PrometheusConfig;
const rules = (parse(readFileSync(join(DIR, 'alerts.yml'), 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const ruleTests = parse(readFileSync(join(DIR, 'tests', 'alerts.test.yml'), 'utf8')) as { rule_files: string[]; tests: RuleTest[] };
const compose = parse(readFileSync(join(REPO, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { environment?: Record<string, string>; expose?: string[] }> };

/** Seconds of a Prometheus duration such as 15s, 1m or 1m30s. */
function seconds(duration: string): number {
  const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };
  const parts = [...duration.matchAll(/(\d+)(ms|s|m|h|d)/g)];
  expect(parts.map((p) => p[0]).join(''), duration).toBe(duration);
  return parts.reduce((sum, [, n, unit]) => sum + Number(n) * (units[unit as string] as number), 0);
}

describe('promtool on deploy/prometheus', () => {
  it('accepts prometheus.yml and the rule files it names', async () => {
    const result = await promtool(['check', 'config', 'prometheus.yml'], '', DIR);
    expect(result.output).toContain('SUCCESS: prometheus.yml is valid prometheus config file syntax');
    expect(result.output).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(result.code).toBe(0);
    expect(config.rule_files).toEqual(['alerts.yml']);
  });

  it('accepts the alert rules', async () => {
    const result = await promtool(['check', 'rules', 'alerts.yml'], '', DIR);
    expect(result).toEqual({ code: 0, output: expect.stringContaining(`SUCCESS: ${rules.length} rules found`) as string });
  });

  it("passes the rules' unit tests", async () => {
    const result = await promtool(['test', 'rules', join('tests', 'alerts.test.yml')], '', DIR);
    expect(result.output).toContain('SUCCESS');
    expect(result.output).not.toContain('FAILED');
    expect(result.code).toBe(0);
  });

  it('fails the unit tests when an alert is broken, so a pass means something', async () => {
    // The same tests on rules whose NoReadyWorker lost its `or vector(0)`: silent with no worker scraped.
    const broken = readFileSync(join(DIR, 'alerts.yml'), 'utf8').replace('(sum(pixelflow_worker_ready) or vector(0)) == 0', 'sum(pixelflow_worker_ready) == 0');
    expect(broken).not.toBe(readFileSync(join(DIR, 'alerts.yml'), 'utf8'));
    const dir = await mkdtemp(join(tmpdir(), 'pixelflow-rules-'));
    try {
      await writeFile(join(dir, 'alerts.yml'), broken);
      const tests = readFileSync(join(DIR, 'tests', 'alerts.test.yml'), 'utf8').replace('  - ../alerts.yml', '  - alerts.yml');
      await writeFile(join(dir, 'tests.yml'), tests);
      const result = await promtool(['test', 'rules', 'tests.yml'], '', dir);
      expect(result.code).not.toBe(0);
      expect(result.output).toContain('alertname: PixelflowNoReadyWorker');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the alert rules', () => {
  it('cover what the operators asked for, each with a severity, a summary, a description and a runbook section', () => {
    expect(rules.map((r) => r.alert)).toEqual(
      expect.arrayContaining(['PixelflowQueueBackingUp', 'PixelflowNoReadyWorker', 'PixelflowJobFailureRatioHigh', 'PixelflowJobLatencyHigh', 'PixelflowRedisUnreachable']),
    );
    const runbook = readFileSync(join(REPO, 'docs', 'operators', 'monitoring.md'), 'utf8');
    for (const rule of rules) {
      expect(['warning', 'critical'], rule.alert).toContain(rule.labels?.['severity']);
      expect(Object.keys(rule.annotations ?? {}).sort(), rule.alert).toEqual(['description', 'runbook', 'summary']);
      expect(rule.annotations?.['runbook'], rule.alert).toBe(`docs/operators/monitoring.md#${rule.alert.toLowerCase()}`);
      expect(runbook, rule.alert).toMatch(new RegExp(`^#+ \`?${rule.alert}\`?$`, 'm'));
    }
  });

  it('are each unit-tested both firing and silent', () => {
    expect(ruleTests.rule_files).toEqual(['../alerts.yml']);
    const checks = ruleTests.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const rule of rules) {
      const mine = checks.filter((c) => c.alertname === rule.alert);
      expect(mine.some((c) => (c.exp_alerts ?? []).length > 0), `${rule.alert} firing`).toBe(true);
      expect(mine.some((c) => (c.exp_alerts ?? []).length === 0), `${rule.alert} silent`).toBe(true);
    }
  });

  it('aggregate the queue, which every API replica reports alike, with max() and never sum()', () => {
    const queue = rules.filter((r) => r.expr.includes('pixelflow_queue_jobs'));
    expect(queue.length).toBeGreaterThan(0);
    for (const rule of queue) {
      expect(rule.expr, rule.alert).toMatch(/max(?:\s+by\s*\([^)]*\))?\s*\(\s*pixelflow_queue_jobs/);
      expect(rule.expr, rule.alert).not.toMatch(/sum(?:\s+by\s*\([^)]*\))?\s*\(\s*pixelflow_queue_jobs/);
    }
  });
});

describe('the scrape configuration', () => {
  const job = (name: string): ScrapeConfig => {
    const found = config.scrape_configs.find((s) => s.job_name === name);
    if (!found) throw new Error(`no scrape job ${name}`);
    return found;
  };

  it("finds every replica of the Compose api and worker services by Docker's DNS, on the ports they listen on", () => {
    const api = job('pixelflow-api');
    const worker = job('pixelflow-worker');
    expect(api.dns_sd_configs).toEqual([expect.objectContaining({ names: ['api'], type: 'A', port: Number(compose.services['api']?.environment?.['PORT']) })]);
    expect(worker.dns_sd_configs).toEqual([
      expect.objectContaining({ names: ['worker'], type: 'A', port: Number(compose.services['worker']?.environment?.['WORKER_METRICS_PORT']) }),
    ]);
    expect(compose.services['worker']?.expose).toEqual([String(worker.dns_sd_configs?.[0]?.port)]);
    for (const scrape of [api, worker]) expect(scrape.metrics_path ?? '/metrics').toBe('/metrics');
  });

  it('gives a scrape time to hear that Redis is away: the services give up on Redis well before Prometheus gives up on them', () => {
    const timeout = seconds(config.global.scrape_timeout ?? '10s');
    expect(timeout).toBeLessThanOrEqual(seconds(config.global.scrape_interval));
    for (const name of ['pixelflow-api', 'pixelflow-worker']) {
      const own = seconds(job(name).scrape_timeout ?? config.global.scrape_timeout ?? '10s');
      expect(Math.max(API_REDIS_TIMEOUT_MS, WORKER_REDIS_TIMEOUT_MS) / 1000, name).toBeLessThan(own / 2);
    }
  });
});
