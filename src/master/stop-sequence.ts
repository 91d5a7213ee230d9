// How the master stops, once asked (a stop wins over everything else it was
// doing). TERM: with drain_delay, the health path answers 503 for that long while
// everything else is served; then each worker finishes its requests. INT, QUIT
// or a second TERM: at once. graceful_timeout + 2 s later, what is left is killed.
// Advanced by the master's reconcile step; the master exits once no worker is left.
import { EXIT } from '../ipc.js';
import type { Logger } from '../logging/logger.js';
import { timerDelay } from '../settings/kinds.js';
import type { Settings } from '../settings/schema.js';
import type { WorkerProcess } from './worker-process.js';

export interface StopSequenceOptions {
  logger: Logger;
  settings: () => Settings;
  workers: () => Set<WorkerProcess>;
  /** drain_delay began: the health check stops probing, STATUS= says so. */
  draining: () => void;
  /** The listeners close: the master's reporting, health check, timers and watcher end. */
  closing: () => void;
  /** No worker is left: the master exits with `code`. */
  finish: (code: number) => void;
  /** The master runs the step again. */
  changed: () => void;
}

type How = 'graceful' | 'quick' | 'kill';

export class StopSequence {
  private how: How | null = null;
  private code: number = EXIT.OK;
  private drainTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** What each worker was last told, and in which state it was: one that became ready since is told again. */
  private readonly told = new Map<WorkerProcess, string>();
  private finished = false;

  constructor(private readonly options: StopSequenceOptions) {}

  get requested(): boolean {
    return this.how !== null;
  }

  get draining(): boolean {
    return this.drainTimer !== null;
  }

  /** Records a stop: TERM graceful, INT/QUIT quick; a second TERM hurries a graceful one. */
  request(quick: boolean): void {
    if (this.how === null) this.how = quick ? 'quick' : 'graceful';
    else if (this.how === 'graceful') {
      this.how = 'quick';
      this.options.logger.info('Quick shutdown');
    }
  }

  /** The first generation failed to boot: every worker is killed and the master exits with `code`. */
  halt(code: number): void {
    this.how = 'kill';
    this.code = code;
  }

  /** One step: begin, end the drain early, tell each worker, finish when none is left. */
  step(wasServing: boolean): void {
    const { logger, settings, workers } = this.options;
    if (this.how === null || this.finished) return;
    if (!this.closed && this.drainTimer === null) {
      const { drain_delay } = settings();
      if (this.how === 'graceful' && wasServing && workers().size > 0 && drain_delay > 0) {
        // The balancer takes the host out on its failing health checks while every
        // other request is still served; responses close their connections, so none
        // is idle in the balancer's pool when the listeners close.
        logger.info(`Graceful shutdown: draining for ${drain_delay} s (health check path answers 503), then finishing in-flight requests`);
        this.drainTimer = setTimeout(() => {
          this.drainTimer = null;
          this.close();
        }, drain_delay * 1000);
        this.options.draining();
      } else {
        if (this.how !== 'kill') logger.info(this.how === 'quick' ? 'Quick shutdown' : 'Graceful shutdown: finishing in-flight requests');
        this.close();
      }
    } else if (this.drainTimer !== null && this.how !== 'graceful') {
      clearTimeout(this.drainTimer);
      this.drainTimer = null;
      this.close();
    }
    for (const worker of workers()) this.tell(worker);
    if (workers().size === 0 && this.closed) {
      this.finished = true;
      this.options.finish(this.code);
    }
  }

  private close(): void {
    this.closed = true;
    this.options.closing();
    // Workers enforce graceful_timeout themselves; this only catches the stuck.
    const graceMs = this.how === 'graceful' ? timerDelay(this.options.settings().graceful_timeout * 1000 + 2000) : 1000;
    setTimeout(() => {
      for (const worker of this.options.workers()) worker.kill('SIGKILL');
    }, graceMs).unref();
    this.options.changed();
  }

  private tell(worker: WorkerProcess): void {
    const how: How | 'drain' = this.closed ? this.how! : 'drain';
    const told = `${how} ${worker.state}`;
    if (this.told.get(worker) === told || worker.state === 'exited') return;
    this.told.set(worker, told);
    worker.once('exit', () => this.told.delete(worker));
    if (how === 'drain') {
      if (worker.state === 'ready') worker.send({ type: 'drain' });
    } else if (how === 'kill') worker.kill('SIGKILL');
    else if (how === 'quick') worker.kill('SIGQUIT');
    else worker.stop();
  }
}
