import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { collectProcessMetrics } from '../src/process-metrics.ts';

// The process metrics both services export, read back from a real prom-client registry.

describe('collectProcessMetrics', () => {
  it('registers the process metrics under the prefix, with no gauge named like a counter', async () => {
    const registry = new Registry();
    collectProcessMetrics(registry, 'test_');
    const metrics = await registry.getMetricsAsJSON();
    const names = metrics.map((metric) => metric.name);
    expect(names).toEqual(expect.arrayContaining(['test_process_cpu_seconds_total', 'test_nodejs_heap_size_used_bytes', 'test_nodejs_active_handles', 'test_nodejs_active_resources']));
    expect(names.every((name) => name.startsWith('test_'))).toBe(true);
    const misnamed = metrics.filter((metric) => metric.name.endsWith('_total') && String(metric.type) !== 'counter').map((metric) => metric.name);
    expect(misnamed).toEqual([]);
  });
});
