// What the master reports about its workers: Prometheus metrics at metrics_bind,
// systemd's STATUS= line, and the numbers behind the control socket's status.
// It reads the master's facts at each report and decides nothing.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HealthStatus } from '../health/health-check.js';
import type { Logger } from '../logging/logger.js';
import { MetricsAggregator, type RestartReason } from '../metrics/aggregator.js';
import { requestWindow, RequestWindowTracker, type RequestWindow, type TotalsAt } from '../metrics/request-window.js';
import { startMetricsServer } from '../metrics/server.js';
import type { MetricsSnapshot } from '../metrics/worker-metrics.js';
import { formatAddress } from '../settings/kinds.js';
import type { Settings } from '../settings/schema.js';
import { formatStatusLine, type ReloadFailure } from '../status-line.js';
import type { Notifier } from '../systemd/notify.js';
import type { WorkerProcess } from './worker-process.js';

const STATUS_INTERVAL_MS = 5000;
const SNAPSHOT_TIMEOUT_MS = 800;
/** The control socket's request window: from the newest sample at least this old… */
const WINDOW_MIN_MS = 1000;
/** …kept this long. */
const WINDOW_MAX_MS = 60_000;

/** The master's state as reported, read fresh at every report. */
export interface ReportedFacts {
  workers: WorkerProcess[];
  desiredWorkers: number;
  health: HealthStatus;
  reloadFailure: ReloadFailure | null;
  /** drain_delay is under way. */
  draining: boolean;
}

export interface ReportingOptions {
  /** The master's current settings. */
  settings: () => Settings;
  logger: Logger;
  notifier: Notifier;
  facts: () => ReportedFacts;
}

export class Reporting {
  private readonly aggregator = new MetricsAggregator({ scrapeTimeoutMs: SNAPSHOT_TIMEOUT_MS });
  private readonly window = new RequestWindowTracker();
  private timer: NodeJS.Timeout | undefined;
  private metricsServer: Server | null = null;
  /** Recent request totals, for the control socket's rate and latency. */
  private samples: TotalsAt[] = [];
  private lastWindow: RequestWindow = { requests: 0, ratePerSec: 0 };

  constructor(private readonly options: ReportingOptions) {}

  /** metrics_bind is read once: like bind, a new address needs a restart. */
  async start(): Promise<void> {
    const { settings, logger, notifier } = this.options;
    const { metrics_bind } = settings();
    if (metrics_bind) {
      this.metricsServer = await startMetricsServer(metrics_bind, () => this.scrape(), logger);
      // The port bound, not the one asked for: `:0` takes a free one.
      const { port } = this.metricsServer.address() as AddressInfo;
      logger.info(`Metrics at: http://${formatAddress({ ...metrics_bind, port })}/metrics`);
    }
    if (notifier.enabled) {
      this.timer = setInterval(() => void this.publishStatus(), STATUS_INTERVAL_MS);
      void this.publishStatus();
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.metricsServer?.close();
  }

  /**
   * STATUS= at once, with the last numbers: `systemctl status` right after a failed
   * `systemctl reload`, or as drain_delay begins, shows it.
   */
  factsChanged(): void {
    if (this.options.notifier.enabled) this.sendStatus();
  }

  /** What the control socket's status reports: fresh worker snapshots, the request window, restarts. */
  async controlFacts(): Promise<{
    window: RequestWindow & { windowSec: number | null };
    requestsOf: (pid: number) => number;
    restarts: Record<RestartReason, number>;
  }> {
    await this.collect();
    const now = Date.now();
    const current = { totals: this.aggregator.requestTotals(), atMs: now };
    const previous = this.samples.filter((s) => now - s.atMs >= WINDOW_MIN_MS).at(-1);
    this.remember(current);
    return {
      window: { ...requestWindow(previous, current), windowSec: previous ? (now - previous.atMs) / 1000 : null },
      requestsOf: (pid) => this.aggregator.requestsOf(pid),
      restarts: this.aggregator.restartCounts(),
    };
  }

  private remember(sample: TotalsAt): void {
    this.samples = this.samples.filter((s) => sample.atMs - s.atMs <= WINDOW_MAX_MS);
    this.samples.push(sample);
  }

  countRestart(reason: RestartReason): void {
    this.aggregator.countRestart(reason);
  }

  countReload(result: 'success' | 'failure'): void {
    this.aggregator.countReload(result);
  }

  workerExited(worker: WorkerProcess): void {
    if (worker.finalMetrics) this.aggregator.update(worker.pid, worker.finalMetrics as MetricsSnapshot);
    this.aggregator.retire(worker.pid);
  }

  private async collect(): Promise<void> {
    const { workers, desiredWorkers, health, draining } = this.options.facts();
    this.aggregator.setWorkers({
      configured: desiredWorkers,
      alive: workers.length,
      ready: workers.filter((w) => w.state === 'ready').length,
    });
    this.aggregator.setHealth(health);
    this.aggregator.setDraining(draining);
    await this.aggregator.collect(
      workers
        .filter((w) => w.everReady)
        .map((w) => ({
          pid: w.pid,
          request: () =>
            w
              .requestMetrics(SNAPSHOT_TIMEOUT_MS * 2)
              .then((data) => data ?? Promise.reject(new Error('no answer'))) as Promise<MetricsSnapshot>,
        })),
    );
  }

  private async scrape(): Promise<string> {
    await this.collect();
    return this.aggregator.render();
  }

  private async publishStatus(): Promise<void> {
    await this.collect();
    const sample = { totals: this.aggregator.requestTotals(), atMs: Date.now() };
    this.remember(sample);
    this.lastWindow = this.window.update(sample.totals, sample.atMs);
    this.sendStatus();
  }

  private sendStatus(): void {
    const { workers, desiredWorkers, health, reloadFailure, draining } = this.options.facts();
    this.options.notifier.status(
      formatStatusLine({
        ...this.lastWindow,
        ready: workers.filter((w) => w.state === 'ready').length,
        total: desiredWorkers,
        health,
        reloadFailure,
        draining,
      }),
    );
  }
}
