export { collectProcessMetrics } from './process-metrics.ts';
