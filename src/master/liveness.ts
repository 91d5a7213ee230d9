// Whether the server is alive, as systemd and the operator see it: the health
// check probes the app through its own listening socket, and WATCHDOG=1 pings
// (sd_watchdog_enabled(3)) say the master's loop runs and a worker answers its
// heartbeats. It records and reports; what a failing health check leads to
// (replacing the workers, then letting the watchdog fire) is the master's decision.
import { EventEmitter } from 'node:events';
import { HealthCheck, type HealthAddress, type HealthStatus } from '../health/health-check.js';
import { heartbeatIntervalMs } from '../heartbeat.js';
import type { Logger } from '../logging/logger.js';
import type { Settings } from '../settings/schema.js';
import type { Notifier } from '../systemd/notify.js';
import type { WorkerProcess } from './worker-process.js';

export interface LivenessOptions {
  /** The master's current settings, read at each use: a reload's apply from then on. */
  settings: () => Settings;
  logger: Logger;
  notifier: Notifier;
  /** Where the health check connects: a listening socket the master can reach, if any. */
  healthAddress: HealthAddress | null;
  /** The current generation serves HTTPS (certfile, or a server script's own TLS). */
  tls: () => boolean;
  workers: () => Iterable<WorkerProcess>;
}

export interface HealthRecord {
  status: HealthStatus;
  consecutiveFailures: number;
  /** Why the last failed probe failed. */
  lastFailure: string | null;
}

/** Emits 'probe' after each health check probe is recorded. */
export class Liveness extends EventEmitter<{ probe: [] }> {
  private healthCheck: HealthCheck | null = null;
  private watchdogTimer: NodeJS.Timeout | undefined;
  private watchdogStopped = false;

  constructor(private readonly options: LivenessOptions) {
    super();
  }

  start(): void {
    this.followHealthCheckPath();
    const { notifier } = this.options;
    if (notifier.watchdogIntervalMs > 0) this.watchdogTimer = setInterval(() => this.pingWatchdog(), notifier.watchdogIntervalMs);
  }

  stop(): void {
    clearInterval(this.watchdogTimer);
    this.stopHealthCheck();
  }

  /**
   * Starts or stops the health check as health_check_path is set or not (a reload
   * may do either); a running check reads its other settings at every probe.
   */
  followHealthCheckPath(): void {
    const { settings, logger, healthAddress, tls } = this.options;
    if (settings().health_check_path === null) {
      this.healthCheck?.stop();
      this.healthCheck = null;
      return;
    }
    if (this.healthCheck) return;
    if (!healthAddress) {
      logger.warning('health_check_path is set but no listening socket has an address the master can reach; health check off');
      return;
    }
    const target = () => ({ ...healthAddress, tls: tls() });
    this.healthCheck = new HealthCheck(settings, target, { warn: (msg) => logger.warning(msg) });
    this.healthCheck.on('probe', () => this.emit('probe'));
    this.healthCheck.start();
  }

  /** drain_delay: the path answers 503 on purpose now, so the probe stops; its last record stays. */
  stopHealthCheck(): void {
    this.healthCheck?.stop();
  }

  /** The master gives up on the app: no more WATCHDOG=1, so systemd restarts the service. */
  stopWatchdogPings(): void {
    this.watchdogStopped = true;
  }

  resumeWatchdogPings(): void {
    this.watchdogStopped = false;
  }

  get pingsWatchdog(): boolean {
    return !this.watchdogStopped;
  }

  get health(): HealthRecord {
    const check = this.healthCheck;
    if (!check) return { status: 'off', consecutiveFailures: 0, lastFailure: null };
    return { status: check.state, consecutiveFailures: check.consecutiveFailures, lastFailure: check.lastFailure };
  }

  // Pings only while a ready worker's loop advanced recently: a server with no live
  // workers lets the watchdog fire, so systemd restarts it.
  private pingWatchdog(): void {
    if (this.watchdogStopped) return;
    const { timeout } = this.options.settings();
    const staleMs = Math.max(timeout * 1000, 3 * heartbeatIntervalMs(timeout));
    const now = Date.now();
    for (const worker of this.options.workers()) {
      if (worker.state === 'ready' && now - worker.lastProgressAt <= staleMs) return this.options.notifier.watchdog();
    }
  }
}
