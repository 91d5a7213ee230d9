// The master's view of all workers' metrics. Request counters and histograms
// are summed over workers; series about one process (CPU, memory, event-loop
// lag) keep a `worker` label. Counters never go backwards when a worker is
// replaced: its last known counters move into a "retired" base that stays in
// the sum. Gauges of gone workers are dropped.
// Everything here is plain JSON in the form of prom-client's getMetricsAsJSON():
// prom-client itself is loaded only by render() (exposition.ts), since the
// master needs request totals for its status line whether or not anyone scrapes.
import { totalmem } from 'node:os';
import type { HealthStatus } from '../health/health-check.js';
import { processMetrics } from './process-metrics.js';
import type { RequestTotals } from './request-window.js';
import { family, single, type SnapshotMetric } from './family.js';
import { PER_WORKER_METRICS, REQUEST_DURATION, REQUESTS_TOTAL, type MetricsSnapshot } from './worker-metrics.js';

export type RestartReason = 'timeout' | 'max_requests' | 'memory' | 'crash' | 'reload' | 'health' | 'killed';
/** `killed`: by `tsgunicorn kill-worker`. */
const RESTART_REASONS: RestartReason[] = ['timeout', 'max_requests', 'memory', 'crash', 'reload', 'health', 'killed'];

const HEALTH_VALUE: Record<HealthStatus, number> = { healthy: 1, unhealthy: 0, unknown: -1, off: -1 };

export interface ScrapedWorker {
  pid: number;
  /** Asks the worker for a snapshot over IPC. */
  request(): Promise<MetricsSnapshot>;
}

export class MetricsAggregator {
  private readonly scrapeTimeoutMs: number;
  private readonly live = new Map<number, MetricsSnapshot>();
  private retired: SnapshotMetric[] = [];
  // Workers retired while a collection was under way, so a reply that arrives after
  // its worker was retired is not counted again. Emptied once no collection runs:
  // a map of every pid ever retired would grow with every reload.
  private readonly retiredWhileCollecting = new Set<number>();
  private collecting = 0;
  // The master's own state, turned into series by render().
  private readonly workerCounts = new Map<string, number>();
  // Every reason exists from the start, so increase() sees the first restart.
  private readonly restarts = Object.fromEntries(RESTART_REASONS.map((reason) => [reason, 0])) as Record<RestartReason, number>;
  private readonly reloads = { success: 0, failure: 0 };
  private health = HEALTH_VALUE.unknown;
  private draining = 0;
  private misses = 0;

  constructor(opts: { scrapeTimeoutMs?: number } = {}) {
    this.scrapeTimeoutMs = opts.scrapeTimeoutMs ?? 800;
  }

  setWorkers(counts: { configured: number; alive: number; ready: number }): void {
    for (const [state, n] of Object.entries(counts)) this.workerCounts.set(state, n);
  }

  countRestart(reason: RestartReason): void {
    this.restarts[reason]++;
  }

  countReload(result: 'success' | 'failure'): void {
    this.reloads[result]++;
  }

  restartCounts(): Record<RestartReason, number> {
    return { ...this.restarts };
  }

  /** Requests one live worker has answered, as of its last snapshot. */
  requestsOf(workerPid: number): number {
    const metric = this.live.get(workerPid)?.metrics.find((m) => m.name === REQUESTS_TOTAL);
    return metric?.values.reduce((n, v) => n + v.value, 0) ?? 0;
  }

  setHealth(status: HealthStatus): void {
    this.health = HEALTH_VALUE[status];
  }

  setDraining(draining: boolean): void {
    this.draining = draining ? 1 : 0;
  }

  /** Records a worker's snapshot, unless a newer one of that worker is already known. */
  update(workerPid: number, snap: MetricsSnapshot): void {
    const known = this.live.get(workerPid);
    if (known === undefined || snap.seq > known.seq) this.live.set(workerPid, snap);
  }

  /** Call when a worker has exited: its counters join the retired base, its gauges go. */
  retire(workerPid: number): void {
    if (this.collecting > 0) this.retiredWhileCollecting.add(workerPid);
    const snap = this.live.get(workerPid);
    if (snap === undefined) return;
    this.live.delete(workerPid);
    this.retired = sumMetrics([this.retired, snap.metrics.filter(isSummedCounter)]);
  }

  /** Asks every worker for a snapshot; one that does not answer in time keeps its last known values. */
  async collect(workers: ScrapedWorker[]): Promise<void> {
    this.collecting++;
    try {
      await Promise.all(
        workers.map(async (worker) => {
          try {
            const snap = await withTimeout(worker.request(), this.scrapeTimeoutMs);
            if (!this.retiredWhileCollecting.has(worker.pid)) this.update(worker.pid, snap);
          } catch {
            this.misses++;
          }
        }),
      );
    } finally {
      if (--this.collecting === 0) this.retiredWhileCollecting.clear();
    }
  }

  /** Prometheus text exposition: the workers' sum and the master's own metrics. */
  async render(): Promise<string> {
    const { renderExposition } = await import('./exposition.js');
    return renderExposition([...this.workerSum(), ...this.masterMetrics()]);
  }

  /** The summed request counter and duration histogram, for the status line. */
  requestTotals(): RequestTotals {
    const sum = this.workerSum();
    const values = (name: string) => sum.find((m) => m.name === name)?.values ?? [];
    const duration = values(REQUEST_DURATION);
    return {
      requests: values(REQUESTS_TOTAL).reduce((n, v) => n + v.value, 0),
      durationSum: duration.find((v) => v.metricName === `${REQUEST_DURATION}_sum`)?.value ?? 0,
      buckets: duration
        .filter((v) => v.metricName === `${REQUEST_DURATION}_bucket`)
        .map((v) => ({ le: v.labels.le === '+Inf' ? Infinity : Number(v.labels.le), count: v.value })),
    };
  }

  private masterMetrics(): SnapshotMetric[] {
    return [
      family(
        'tsgunicorn_workers',
        'Worker processes: configured count, alive, and ready to serve.',
        'gauge',
        [...this.workerCounts].map(([state, value]) => ({ value, labels: { state } })),
      ),
      family(
        'tsgunicorn_worker_restarts_total',
        'Workers replaced, by reason.',
        'counter',
        RESTART_REASONS.map((reason) => ({ value: this.restarts[reason], labels: { reason } })),
      ),
      family(
        'tsgunicorn_reloads_total',
        'Reloads (HUP, systemctl reload) by result: success, or failure (the old workers kept serving).',
        'counter',
        Object.entries(this.reloads).map(([result, value]) => ({ value, labels: { result } })),
      ),
      family(
        'tsgunicorn_health_status',
        'Result of the health check: 1 healthy, 0 unhealthy, -1 unknown or off.',
        'gauge',
        single(this.health),
      ),
      family(
        'tsgunicorn_draining',
        'A graceful stop waits drain_delay: 1 while the health check path answers 503, before the listeners close.',
        'gauge',
        single(this.draining),
      ),
      family(
        'tsgunicorn_scrape_worker_misses_total',
        "Worker snapshots not received in time; that worker's last known values were used.",
        'counter',
        single(this.misses),
      ),
      family(
        'tsgunicorn_machine_memory_bytes',
        "The machine's total memory, in bytes (for memory-share alerts).",
        'gauge',
        single(totalmem()),
      ),
      ...processMetrics(),
    ];
  }

  private workerSum(): SnapshotMetric[] {
    const live = [...this.live].map(([pid, snap]) => snap.metrics.map((m) => labelPerWorker(m, pid)));
    return sumMetrics([this.retired, ...live]);
  }
}

/** Monotonic series summed over workers: these survive their worker in the retired base. */
function isSummedCounter(metric: SnapshotMetric): boolean {
  return !PER_WORKER_METRICS.has(metric.name) && (metric.type === 'counter' || metric.type === 'histogram');
}

function labelPerWorker(metric: SnapshotMetric, pid: number): SnapshotMetric {
  if (!PER_WORKER_METRICS.has(metric.name)) return metric;
  return { ...metric, values: metric.values.map((v) => ({ ...v, labels: { ...v.labels, worker: String(pid) } })) };
}

/** Adds up values with the same metric name, series name and labels; the first part's order wins. */
function sumMetrics(parts: SnapshotMetric[][]): SnapshotMetric[] {
  const families = new Map<string, { metric: SnapshotMetric; series: Map<string, SnapshotMetric['values'][number]> }>();
  for (const metric of parts.flat()) {
    let family = families.get(metric.name);
    if (family === undefined) {
      family = { metric, series: new Map() };
      families.set(metric.name, family);
    }
    for (const v of metric.values) {
      const key = `${v.metricName ?? ''}${JSON.stringify(Object.entries(v.labels).sort(([a], [b]) => (a < b ? -1 : 1)))}`;
      const seen = family.series.get(key);
      family.series.set(key, seen === undefined ? { ...v } : { ...seen, value: seen.value + v.value });
    }
  }
  return [...families.values()].map(({ metric, series }) => ({ ...metric, values: [...series.values()] }));
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
