// CPU time and resident memory of the current process, read at collect time.
// Workers and the master both register these, under different names: the
// master's are the conventional process_* series of the scraped target, the
// workers' are tsgunicorn_worker_* series that the master labels by pid.
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
