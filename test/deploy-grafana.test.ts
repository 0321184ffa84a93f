import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify, parse } from 'yaml';
import { REPO } from '../scripts/compiled.mjs';
import { dashboard, withoutGrafanaVariables } from './support/monitoring-files.ts';
import { promtool } from './support/promtool.ts';
import { namesInQuery } from './support/promql.ts';

// deploy/grafana as Grafana reads it: the provisioned datasource is the one every panel names and
// matches Prometheus's scrape interval, every query is PromQL that promtool accepts, the panels
// cover what operators asked for, and legends name labels their queries keep. Whether each metric
// exists on the live services: test/service/monitoring.test.ts.

interface Datasource {
  name: string;
  uid: string;
  type: string;
  url: string;
  isDefault?: boolean;
  jsonData?: { timeInterval?: string };
}
const datasources = (parse(readFileSync(join(REPO, 'deploy/grafana/provisioning/datasources/prometheus.yml'), 'utf8')) as { apiVersion: number; datasources: Datasource[] });
const providers = parse(readFileSync(join(REPO, 'deploy/grafana/provisioning/dashboards/pixelflow.yml'), 'utf8')) as { apiVersion: number; providers: { type: string; options: { path: string } }[] };
const prometheus = parse(readFileSync(join(REPO, 'deploy/prometheus/prometheus.yml'), 'utf8')) as { global: { scrape_interval: string } };
const board = dashboard();
const targets = board.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel, target })));

describe('Grafana provisioning', () => {
  it('provisions one default Prometheus datasource whose interval is the scrape interval', () => {
    expect(datasources.apiVersion).toBe(1);
    expect(datasources.datasources).toHaveLength(1);
    expect(datasources.datasources[0]).toMatchObject({ type: 'prometheus', access: 'proxy', isDefault: true, url: 'http://prometheus:9090' });
    expect(datasources.datasources[0]?.jsonData?.timeInterval).toBe(prometheus.global.scrape_interval);
  });

  it('loads dashboards from files', () => {
    expect(providers.apiVersion).toBe(1);
    expect(providers.providers).toEqual([expect.objectContaining({ type: 'file', options: expect.objectContaining({ path: '/etc/grafana/dashboards' }) as unknown })]);
  });
});

describe('the dashboard', () => {
  const uid = datasources.datasources[0]?.uid;

  it('queries the provisioned datasource from every panel and target', () => {
    expect(uid).toMatch(/^[\w-]+$/);
    expect(targets.length).toBeGreaterThan(0);
    for (const panel of board.panels) expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid });
    for (const { panel, target } of targets) expect(target.datasource, `${panel.title} ${target.refId}`).toEqual({ type: 'prometheus', uid });
  });

  it('has unique panel ids and ref ids, and panels that fit the 24-column grid without overlapping', () => {
    expect(board.uid).toMatch(/^[\w-]{1,40}$/);
    expect(new Set(board.panels.map((p) => p.id)).size).toBe(board.panels.length);
    for (const panel of board.panels) {
      const refIds = (panel.targets ?? []).map((t) => t.refId);
      expect(new Set(refIds).size, panel.title).toBe(refIds.length);
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
      expect(panel.gridPos.w * panel.gridPos.h, panel.title).toBeGreaterThan(0);
    }
    const cells = new Map<string, string>();
    for (const { title, gridPos } of board.panels) {
      for (let x = gridPos.x; x < gridPos.x + gridPos.w; x += 1) {
        for (let y = gridPos.y; y < gridPos.y + gridPos.h; y += 1) {
          expect(cells.get(`${x},${y}`), `${title} overlaps`).toBeUndefined();
          cells.set(`${x},${y}`, title);
        }
      }
    }
  });

  it('has only queries that promtool accepts as PromQL', async () => {
    // Each query as a recording rule: `promtool check rules` parses every expression.
    const rules = {
      groups: [
        {
          name: 'dashboard',
          rules: targets.map(({ panel, target }) => ({ record: `dashboard:panel${panel.id}:${target.refId}`, expr: withoutGrafanaVariables(target.expr) })),
        },
      ],
    };
    const dir = await mkdtemp(join(tmpdir(), 'pixelflow-dashboard-'));
    try {
      await writeFile(join(dir, 'queries.yml'), stringify(rules));
      const result = await promtool(['check', 'rules', 'queries.yml'], '', dir);
      expect(result.output).toContain(`SUCCESS: ${targets.length} rules found`);
      expect(result.code).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('shows what operators asked for', () => {
    const queries = targets.map(({ target }) => ({ expr: target.expr, ...namesInQuery(target.expr) }));
    /** Some query selects `metric` and groups by every one of `by`, and its text matches `text`. */
    const shows = (metric: string, by: string[] = [], text = /./): boolean =>
      queries.some((q) => q.selectors.some((s) => s.name === metric) && by.every((label) => q.groupingLabels.includes(label)) && text.test(q.expr));
    const wanted: [string, string[], RegExp?][] = [
      ['pixelflow_queue_jobs', ['state'], /max by/], // queue depth, never summed over replicas
      ['pixelflow_jobs_created_total', []], // throughput: jobs
      ['pixelflow_jobs_finished_total', ['status']],
      ['pixelflow_images_generated_total', []], // throughput: images
      ['pixelflow_job_latency_seconds_bucket', ['le'], /histogram_quantile\(0\.5,/], // end-to-end percentiles
      ['pixelflow_job_latency_seconds_bucket', ['le'], /histogram_quantile\(0\.95,/],
      ['pixelflow_job_latency_seconds_bucket', ['le'], /histogram_quantile\(0\.99,/],
      ['pixelflow_model_call_seconds_bucket', ['le', 'resolution']], // model call time per stage resolution
      ['pixelflow_onnxruntime_run_seconds_sum', ['resolution']],
      ['pixelflow_job_failures_total', ['type']], // failures by type
      ['pixelflow_jobs_rejected_total', ['reason']], // rejected requests by reason
      ['up', [], /job="pixelflow-worker"/], // workers up
      ['pixelflow_worker_ready', []],
      ['pixelflow_worker_busy', []], // workers busy
      ['pixelflow_sse_streams', []], // open SSE streams
      ['pixelflow_http_request_duration_seconds_bucket', ['le', 'route']], // HTTP latency by route
      ['pixelflow_redis_up', []],
    ];
    for (const [metric, by, text] of wanted) expect(shows(metric, by, text), `${metric} by (${by.join(', ')}) ${String(text ?? '')}`).toBe(true);
    for (const query of queries.filter((q) => q.selectors.some((s) => s.name === 'pixelflow_queue_jobs'))) {
      expect(query.expr).toMatch(/^max(?:\s+by\s*\([^)]*\))?\s*\(\s*pixelflow_queue_jobs/);
    }
  });

  it('names in each legend only labels its query keeps', () => {
    for (const { panel, target } of targets) {
      const legendLabels = [...(target.legendFormat ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]);
      if (legendLabels.length === 0) continue;
      const { groupingLabels } = namesInQuery(target.expr);
      // Aggregated with by (...): only those labels are left. Not aggregated: the target's job and instance.
      const kept = /^\s*(sum|max|min|avg|count|histogram_quantile|\d+ \* sum)\b/.test(target.expr) ? groupingLabels : ['job', 'instance'];
      for (const label of legendLabels) expect(kept, `${panel.title} ${target.refId}: {{${String(label)}}}`).toContain(label);
    }
  });
});
