// CPU time and resident memory of the current process, read at collect time:
// the master's conventional process_* series of the scraped target. Workers
// report the same two readings as tsgunicorn_worker_* series from
// worker-metrics.ts, which keeps prom-client out of the worker process.
import { Counter, Gauge, type Registry } from 'prom-client';

export function registerProcessMetrics(
  registry: Registry,
  names: { cpuSeconds: string; residentMemory: string },
): void {
  let reportedCpuMicros = 0;
  new Counter({
    name: names.cpuSeconds,
    help: 'User and system CPU time spent, in seconds.',
    registers: [registry],
    collect() {
      const { user, system } = process.cpuUsage();
      // Counters only go up: add what was spent since the previous collect.
      this.inc((user + system - reportedCpuMicros) / 1e6);
      reportedCpuMicros = user + system;
    },
  });
  new Gauge({
    name: names.residentMemory,
    help: 'Resident memory size, in bytes.',
    registers: [registry],
    collect() {
      this.set(process.memoryUsage.rss());
    },
  });
}
