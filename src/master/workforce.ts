// The workers, and how they are started: a generation's count brought to its
// target, spawning paced (a bounded number booting at once), and after a worker
// that could not be started or booted, a backoff before the next. It acts only
// when the master's reconcile step calls balance().
import os from 'node:os';
import type { Logger } from '../logging/logger.js';
import type { RestartReason } from '../metrics/aggregator.js';
import type { Settings } from '../settings/schema.js';
import { WorkerProcess, type SpawnOptions } from './worker-process.js';

/** Workers booting at once: imports compete for the CPUs, and 1,024 forks in one go exhaust a pids limit. */
export const MAX_BOOTING = Math.max(8, 2 * os.availableParallelism());
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30_000;

export interface WorkforceOptions {
  logger: Logger;
  /** How a new worker of a generation is started (everything but its generation and id). */
  spawnOptions: (settings: Settings) => Omit<SpawnOptions, 'generation' | 'id'>;
  /** A worker was started, became ready, asked to be recycled or exited: the master's step runs. */
  changed: () => void;
  exited: (worker: WorkerProcess) => void;
  /** A replaced worker retires: count the restart. */
  restarted: (reason: RestartReason) => void;
}

export class Workforce {
  readonly workers = new Set<WorkerProcess>();
  private nextId = 1;
  private backoffMs = 0;
  /** No spawn before this time (epoch ms): a worker failed to start or boot. */
  private notBefore = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  /** A failure to fork was logged; said again only after every wanted worker ran. */
  private forkFailing = false;

  constructor(private readonly options: WorkforceOptions) {}

  /** The workers of `generation` that count toward its target: booting, or serving and not being replaced. */
  fresh(generation: number): WorkerProcess[] {
    return [...this.workers].filter((w) => w.generation === generation && (w.state === 'booting' || (w.state === 'ready' && !w.replacing)));
  }

  ready(generation: number): number {
    return this.fresh(generation).filter((w) => w.state === 'ready').length;
  }

  /**
   * Spawns (paced) or retires workers of `generation` until `target` of them
   * serve, and retires recycled workers as their successors become ready.
   */
  balance(generation: number, settings: Settings, target: number): void {
    const fresh = this.fresh(generation);
    if (fresh.length > target) {
      // Booting ones first (nothing in flight), then the youngest.
      const order = fresh.sort((a, b) => Number(b.state === 'booting') - Number(a.state === 'booting') || b.startedAt - a.startedAt);
      for (const worker of order.slice(0, fresh.length - target)) worker.retire('reload');
    }
    const booting = [...this.workers].filter((w) => w.state === 'booting').length;
    const spawns = Math.min(target - fresh.length, MAX_BOOTING - booting);
    // A fork that fails ends the batch: the next ones would fail alike.
    for (let i = 0; i < spawns && !this.backingOff(); i++) if (!this.spawn(settings, generation)) break;
    if (this.forkFailing && fresh.length >= target) {
      this.forkFailing = false;
      this.options.logger.info(`Workers start again: ${target} running`);
    }
    const replaced = [...this.workers].filter((w) => w.generation === generation && w.replacing).sort((a, b) => a.startedAt - b.startedAt);
    let retiring = this.ready(generation) + replaced.length - target;
    for (const worker of replaced) {
      if (retiring-- <= 0) break;
      this.options.restarted(worker.replacing!);
      worker.retire(worker.replacing!);
    }
  }

  /**
   * A worker could not be started (forkError), or one of the serving generation
   * did not boot (bootFailure, the log entry): wait before the next, longer each time.
   */
  backOff(failure: { forkError: Error } | { bootFailure: string }): void {
    // Several failures of one batch make one wait, not a wait doubled for each.
    if (!this.backingOff()) {
      this.backoffMs = Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_MIN_MS, this.backoffMs * 2));
      this.notBefore = Date.now() + this.backoffMs;
    }
    if ('forkError' in failure) {
      // A fork failure repeats until the host has room: said once, until every worker wanted runs.
      if (!this.forkFailing) {
        this.options.logger.error(
          `Cannot start a worker: ${failure.forkError.message}; retrying, at most every ${BACKOFF_MAX_MS / 1000} s, until it works`,
        );
      }
      this.forkFailing = true;
    } else {
      this.options.logger.error(failure.bootFailure);
      this.options.logger.error(`Worker failed to boot; retrying in ${this.backoffMs / 1000} s`);
    }
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.options.changed();
    }, this.backoffMs);
  }

  /** The master stops: no more retries. */
  stopRetrying(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private backingOff(): boolean {
    return Date.now() < this.notBefore;
  }

  /** False when the fork failed. */
  private spawn(settings: Settings, generation: number): boolean {
    let worker: WorkerProcess;
    try {
      worker = new WorkerProcess({ ...this.options.spawnOptions(settings), generation, id: this.nextId++ });
    } catch (err) {
      // Node throws some fork failures instead of emitting 'error': they cost this worker, never the master.
      this.backOff({ forkError: err as Error });
      return false;
    }
    this.workers.add(worker);
    if (worker.pid > 0) this.options.logger.info(`Booting worker with pid: ${worker.pid}`);
    worker.on('recycle', (reason: RestartReason) => {
      this.options.logger.info(`Worker (pid:${worker.pid}) reached max_requests: replacing it`);
      worker.replaceFor(reason);
      this.options.changed();
    });
    worker.once('ready', () => {
      this.options.logger.debug(`Worker (pid:${worker.pid}) ready in ${Date.now() - worker.startedAt} ms`);
      this.backoffMs = 0;
      this.options.changed();
    });
    worker.once('exit', () => {
      this.workers.delete(worker);
      this.options.exited(worker);
      this.options.changed();
    });
    return worker.pid > 0;
  }
}
