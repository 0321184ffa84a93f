import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { REPO } from '../../scripts/compiled.mjs';

// deploy/prometheus and deploy/grafana as the monitoring tests read them: the scrape jobs, the
// alert rules and the dashboard's panels and queries.

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface DashboardTarget {
  refId: string;
  expr: string;
  legendFormat?: string;
  datasource?: { type: string; uid: string };
}

export interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  description?: string;
  datasource?: { type: string; uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: DashboardTarget[];
  fieldConfig?: { defaults?: { unit?: string } };
}

export interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: DashboardPanel[];
}

/** One PromQL query of the monitoring files, and where it is written (for messages). */
export interface Query {
  where: string;
  expr: string;
}

const read = (path: string): string => readFileSync(join(REPO, path), 'utf8');

export function scrapeJobs(): string[] {
  return (parse(read('deploy/prometheus/prometheus.yml')) as { scrape_configs: { job_name: string }[] }).scrape_configs.map((s) => s.job_name);
}

export function alertRules(): AlertRule[] {
  return (parse(read('deploy/prometheus/alerts.yml')) as { groups: { rules: AlertRule[] }[] }).groups.flatMap((g) => g.rules);
}

export const DASHBOARD_PATH = 'deploy/grafana/dashboards/pixelflow-serve.json';

export function dashboard(): Dashboard {
  return JSON.parse(read(DASHBOARD_PATH)) as Dashboard;
}

/** A dashboard query as Prometheus would run it: Grafana's interval variables replaced by durations. */
export function withoutGrafanaVariables(expr: string): string {
  return expr.replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '15s').replaceAll('$__range', '1h');
}

/** Every query of the alert rules and of the dashboard. */
export function monitoringQueries(): Query[] {
  return [
    ...alertRules().map((rule) => ({ where: `alert ${rule.alert}`, expr: rule.expr })),
    ...dashboard().panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ where: `panel "${panel.title}" ${target.refId}`, expr: target.expr }))),
  ];
}
