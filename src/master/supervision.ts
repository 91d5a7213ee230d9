// What heartbeats and health probes lead to, decided in the master's reconcile
// step: a worker hung past `timeout` is killed, one over max_worker_memory is
// replaced, and a failing health check replaces every worker, then stops the
// watchdog pings so that systemd restarts the service.
import type { Logger } from '../logging/logger.js';
import type { RestartReason } from '../metrics/aggregator.js';
import type { Settings } from '../settings/schema.js';
import type { Liveness } from './liveness.js';
import type { WorkerProcess } from './worker-process.js';

export function killHung(
  workers: Iterable<WorkerProcess>,
  settings: Settings,
  logger: Logger,
  restarted: (r: RestartReason) => void,
): void {
  const timeoutMs = settings.timeout * 1000;
  if (timeoutMs <= 0) return;
  const now = Date.now();
  for (const worker of workers) {
    if (worker.state === 'booting' || worker.state === 'exited' || worker.retireReason === 'timeout') continue;
    if (now - worker.lastProgressAt <= timeoutMs) continue;
    const oldest = worker.lastBeat?.oldest;
    const doing = oldest ? `: ${oldest.label} in flight for ${((now - oldest.startedAt) / 1000).toFixed(1)} s` : ': no request in flight';
    logger.critical(`WORKER TIMEOUT (pid:${worker.pid})${doing}`);
    if (worker.state !== 'retiring') restarted('timeout');
    // Gunicorn sends a hung worker SIGABRT, whose handler exits, and SIGKILL only
    // if it is still there at the next check. A blocked event loop runs no signal
    // handler, and the heartbeat has already named the hung request: SIGKILL now.
    worker.terminate('timeout');
  }
}

export function replaceOverMemory(workers: Iterable<WorkerProcess>, settings: Settings, logger: Logger): void {
  const limitMb = settings.max_worker_memory;
  if (limitMb <= 0) return;
  for (const worker of workers) {
    const rss = worker.lastBeat?.rss ?? 0;
    if (rss <= limitMb * 1024 * 1024 || worker.replacing || worker.state !== 'ready') continue;
    logger.warning(`Worker (pid:${worker.pid}) uses ${Math.round(rss / 1048576)} MB, over max_worker_memory ${limitMb} MB: replacing it`);
    worker.replaceFor('memory');
  }
}

/**
 * The health check's record, read after each probe: failure_threshold failures
 * in a row replace all workers; as many again after that stop the watchdog pings.
 */
export class HealthSupervision {
  /** Consecutive failures when the workers were replaced; null while the check passes. */
  private failuresAtReplacement: number | null = null;

  /** True when every worker is to be replaced. */
  decide(liveness: Liveness, settings: Settings, watchdogEnabled: boolean, logger: Logger): boolean {
    const { status, consecutiveFailures, lastFailure } = liveness.health;
    if (status === 'unknown') return false;
    const replacedAt = this.failuresAtReplacement;
    if (status !== 'unhealthy') {
      if (replacedAt === null) return false;
      this.failuresAtReplacement = null;
      liveness.resumeWatchdogPings();
      if (status === 'healthy') logger.info('Health check passes again');
    } else if (replacedAt === null) {
      logger.error(`Health check failed ${consecutiveFailures} times (${lastFailure}): replacing all workers`);
      this.failuresAtReplacement = consecutiveFailures;
      return true;
    } else if (watchdogEnabled && liveness.pingsWatchdog && consecutiveFailures >= replacedAt + settings.health_check_failure_threshold) {
      logger.critical('Health check still failing after the workers were replaced: stopping watchdog pings');
      liveness.stopWatchdogPings();
    }
    return false;
  }
}
