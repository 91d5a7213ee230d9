// What the master tells the outside world about its workers: Prometheus metrics,
// the health check and what it does on failure, systemd's STATUS= line and the
// watchdog pings.
import type { Server } from 'node:http';
import { HealthCheck } from '../health/health-check.js';
import { heartbeatIntervalMs } from '../heartbeat.js';
import type { Logger } from '../logging/logger.js';
import { MetricsAggregator, type RestartReason } from '../metrics/aggregator.js';
import { requestWindow, RequestWindowTracker, type RequestWindow, type TotalsAt } from '../metrics/request-window.js';
import { startMetricsServer } from '../metrics/server.js';
import type { MetricsSnapshot } from '../metrics/worker-metrics.js';
import { formatAddress } from '../settings/kinds.js';
import type { Settings } from '../settings/schema.js';
import type { ListenSocket } from '../sockets.js';
import { formatStatusLine, type StatusFacts } from '../status-line.js';
import type { Notifier } from '../systemd/notify.js';
import type { WorkerProcess } from './worker-process.js';

const STATUS_INTERVAL_MS = 5000;
const SNAPSHOT_TIMEOUT_MS = 800;
/** The control socket's request window: from the newest sample at least this old… */
const WINDOW_MIN_MS = 1000;
/** …kept this long. */
const WINDOW_MAX_MS = 60_000;

export interface ObservabilityOptions {
  settings: Settings;
  logger: Logger;
  notifier: Notifier;
  sockets: ListenSocket[];
  /** The sockets serve HTTPS: tsgunicorn's certfile, or a server script's own TLS. */
  tls: boolean;
  workers: () => WorkerProcess[];
  desiredWorkers: () => number;
  /** Replace every worker (health check failure). */
  replaceAllWorkers: () => Promise<unknown>;
}

export class Observability {
  private readonly aggregator = new MetricsAggregator({ scrapeTimeoutMs: SNAPSHOT_TIMEOUT_MS });
  private readonly window = new RequestWindowTracker();
  private readonly timers: NodeJS.Timeout[] = [];
  private metricsServer: Server | null = null;
  private health: HealthCheck | null = null;
  /** Set once a replacement of all workers did not make the app healthy: watchdog pings stop. */
  private givenUp = false;
  /** Consecutive failures when the workers were replaced for health; null while healthy. */
  private failuresAtReplacement: number | null = null;
  private settings: Settings;
  private reloadFailure: StatusFacts['reloadFailure'] = null;
  /** Recent request totals, for the control socket's rate and latency. */
  private samples: TotalsAt[] = [];
  private lastWindow: RequestWindow = { requests: 0, ratePerSec: 0 };
  private draining = false;

  constructor(private readonly options: ObservabilityOptions) {
    this.settings = options.settings;
  }

  async start(): Promise<void> {
    const { settings, logger, notifier } = this.options;
    if (settings.metrics_bind) {
      this.metricsServer = await startMetricsServer(settings.metrics_bind, () => this.scrape(), logger);
      logger.info(`Metrics at: http://${formatAddress(settings.metrics_bind)}/metrics`);
    }
    this.startHealthCheck();
    if (notifier.enabled) {
      this.timers.push(setInterval(() => void this.publishStatus(), STATUS_INTERVAL_MS));
      void this.publishStatus();
    }
    if (notifier.watchdogIntervalMs > 0) {
      this.timers.push(setInterval(() => this.pingWatchdog(), notifier.watchdogIntervalMs));
    }
  }

  stop(): void {
    for (const timer of this.timers) clearInterval(timer);
    this.health?.stop();
    this.metricsServer?.close();
  }

  /**
   * drain_delay: the health check path answers 503 on purpose now, so the probe
   * stops; metrics and STATUS= keep being served and say "draining".
   */
  startDraining(): void {
    this.draining = true;
    this.health?.stop();
    this.aggregator.setDraining();
    if (this.options.notifier.enabled) void this.publishStatus();
  }

  settingsChanged(settings: Settings): void {
    this.settings = settings;
  }

  /** A failed reload is shown first in STATUS= until `reloadFailure(null)` after a successful one. */
  setReloadFailure(failure: StatusFacts['reloadFailure']): void {
    this.reloadFailure = failure;
    // At once, with the last numbers: `systemctl status` right after a failed `systemctl reload` shows it.
    if (this.options.notifier.enabled) this.sendStatus();
  }

  /** What the control socket's status reports: fresh worker snapshots, the request window, restarts, health. */
  async controlFacts(): Promise<{
    window: RequestWindow & { windowSec: number | null };
    requestsOf: (pid: number) => number;
    restarts: Record<RestartReason, number>;
    health: StatusFacts['health'];
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
      health: this.health ? this.health.state : 'off',
    };
  }

  private remember(sample: TotalsAt): void {
    this.samples = this.samples.filter((s) => sample.atMs - s.atMs <= WINDOW_MAX_MS);
    this.samples.push(sample);
  }

  countRestart(reason: RestartReason): void {
    this.aggregator.countRestart(reason);
  }

  workerExited(worker: WorkerProcess): void {
    if (worker.finalMetrics) this.aggregator.update(worker.pid, worker.finalMetrics as MetricsSnapshot);
    this.aggregator.retire(worker.pid);
  }

  private async collect(): Promise<void> {
    const workers = this.options.workers();
    this.aggregator.setWorkers({
      configured: this.options.desiredWorkers(),
      alive: workers.length,
      ready: workers.filter((w) => w.state === 'ready').length,
    });
    this.aggregator.setHealth(this.health ? this.health.state : 'off');
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
    const workers = this.options.workers();
    const recent = this.lastWindow;
    this.options.notifier.status(
      formatStatusLine({
        ready: workers.filter((w) => w.state === 'ready').length,
        total: this.options.desiredWorkers(),
        requests: recent.requests,
        ratePerSec: recent.ratePerSec,
        p99Ms: recent.p99Ms,
        meanMs: recent.meanMs,
        health: this.health ? this.health.state : 'off',
        reloadFailure: this.reloadFailure,
        draining: this.draining,
      }),
    );
  }

  // sd_watchdog_enabled(3): ping only while the loop runs and a worker answers its
  // heartbeats; a server with no live workers, or an app that stays unhealthy after
  // its workers were replaced, lets the watchdog fire so systemd restarts it.
  private pingWatchdog(): void {
    const health = this.health;
    if (
      !this.givenUp &&
      health &&
      this.failuresAtReplacement !== null &&
      health.consecutiveFailures >= this.failuresAtReplacement + this.settings.health_check_failure_threshold
    ) {
      this.givenUp = true;
      this.options.logger.critical('Health check still failing after the workers were replaced: stopping watchdog pings');
    }
    if (this.givenUp) return;
    const staleMs = Math.max(this.settings.timeout * 1000, 3 * heartbeatIntervalMs(this.settings.timeout));
    const now = Date.now();
    if (this.options.workers().some((w) => w.state === 'ready' && now - w.lastProgressAt <= staleMs)) {
      this.options.notifier.watchdog();
    }
  }

  private startHealthCheck(): void {
    const { settings, logger, sockets } = this.options;
    if (!settings.health_check_path) return;
    const target = sockets.find((s) => s.target !== null)?.target;
    if (!target) {
      logger.warning('health_check_path is set but no listening socket has an address the master can reach; health check off');
      return;
    }
    this.health = new HealthCheck(settings, { ...target, tls: this.options.tls }, { warn: (msg) => logger.warning(msg) });
    this.health.on('unhealthy', (reason) => {
      logger.error(`Health check failed ${settings.health_check_failure_threshold} times (${reason}): replacing all workers`);
      this.failuresAtReplacement = this.health!.consecutiveFailures;
      void this.options.replaceAllWorkers();
    });
    this.health.on('healthy', () => {
      logger.info('Health check passes again');
      this.failuresAtReplacement = null;
      this.givenUp = false;
    });
    this.health.start();
  }
}
