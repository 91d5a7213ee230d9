// CPU time and resident memory of the current process, read when called: the
// master's conventional process_* series of the scraped target. Workers report
// the same two readings as tsgunicorn_worker_* series from worker-metrics.ts.
import type { SnapshotMetric } from './worker-metrics.js';

export function processMetrics(): SnapshotMetric[] {
  const { user, system } = process.cpuUsage();
  return [
    {
      name: 'process_cpu_seconds_total',
      help: 'User and system CPU time spent, in seconds.',
      type: 'counter',
      values: [{ value: (user + system) / 1e6, labels: {} }],
      aggregator: 'sum',
    },
    {
      name: 'process_resident_memory_bytes',
      help: 'Resident memory size, in bytes.',
      type: 'gauge',
      values: [{ value: process.memoryUsage.rss(), labels: {} }],
      aggregator: 'sum',
    },
  ];
}
