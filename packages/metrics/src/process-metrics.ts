import { collectDefaultMetrics, type Registry } from 'prom-client';

// prom-client's default process metrics, less the three that break Prometheus's naming rules:
// gauges called `..._total` (a suffix kept for counters), which `promtool check metrics` rejects
// and which would read as counters on a dashboard. Their information stays, split by type, in the
// gauges prom-client registers beside them (`nodejs_active_handles`, `_requests`, `_resources`).

const MISNAMED = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'] as const;

/** Registers the process metrics of this process on `registry`, every name starting with `prefix`. */
export function collectProcessMetrics(registry: Registry, prefix: string): void {
  collectDefaultMetrics({ register: registry, prefix });
  for (const name of MISNAMED) registry.removeSingleMetric(`${prefix}${name}`);
}
