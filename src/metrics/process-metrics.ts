// CPU time and resident memory of the current process, read when called: the
// master's conventional process_* series of the scraped target, and each
// worker's tsgunicorn_worker_* series (worker-metrics.ts), with the same help.
import { family, single, type SnapshotMetric } from './family.js';

export function processMetrics(
  names: { cpu: string; memory: string } = { cpu: 'process_cpu_seconds_total', memory: 'process_resident_memory_bytes' },
): SnapshotMetric[] {
  const { user, system } = process.cpuUsage();
  return [
    family(names.cpu, 'User and system CPU time spent, in seconds.', 'counter', single((user + system) / 1e6)),
    family(names.memory, 'Resident memory size, in bytes.', 'gauge', single(process.memoryUsage.rss())),
  ];
}
