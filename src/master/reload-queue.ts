// Reload requests: HUP, `tsgunicorn reload`, a changed source file (`reload`)
// and a failing health check ask for one. One rollout runs at a time; requests
// that arrive meanwhile are queued and coalesced into the next, which reads the
// settings and imports the code as they are when it starts: the newest win
// (Gunicorn queues a HUP the same way).
import type { RestartReason } from '../metrics/aggregator.js';
import type { ReloadOutcome } from '../control/protocol.js';
import type { Settings } from '../settings/schema.js';
import type { BootFailure } from './boot-failure.js';

export type ReloadWaiter = (outcome: ReloadOutcome) => void;

export interface ReloadRequest {
  reason: RestartReason;
  /** Re-read the config and environment (a reload); a health replacement keeps the settings. */
  rereadConfig: boolean;
  waiters: ReloadWaiter[];
}

/** A new generation booting beside the serving one. */
export interface Rollout extends ReloadRequest {
  generation: number;
  settings: Settings;
  /** The count it commits: `workers` as re-read, with TTIN, TTOU and scale during the rollout applied. */
  count: number;
  /** on_reload has run: its workers may boot. */
  started: boolean;
  /** The first of its workers that exited before it was ready. */
  failure: BootFailure | null;
}

export class ReloadQueue {
  private queued: ReloadRequest | null = null;
  current: Rollout | null = null;

  /** Records a request; true when it waits for the running rollout. */
  request(reason: RestartReason, rereadConfig: boolean, waiter?: ReloadWaiter): boolean {
    const queued = (this.queued ??= { reason, rereadConfig, waiters: [] });
    // A reload replaces the workers too: it subsumes a health replacement.
    if (rereadConfig) Object.assign(queued, { reason, rereadConfig });
    if (waiter) queued.waiters.push(waiter);
    return this.current !== null;
  }

  /** The queued request, taken, when no rollout runs. */
  next(): ReloadRequest | null {
    if (this.current !== null) return null;
    const next = this.queued;
    this.queued = null;
    return next;
  }

  /** The running rollout ended: its waiters learn how. */
  settle(outcome: ReloadOutcome): void {
    for (const waiter of this.current?.waiters ?? []) waiter(outcome);
    this.current = null;
  }

  /** The master stops: every rollout, running or queued, is off. */
  abandon(): void {
    const outcome: ReloadOutcome = { ok: false, reason: 'the server is stopping' };
    this.settle(outcome);
    for (const waiter of this.queued?.waiters ?? []) waiter(outcome);
    this.queued = null;
  }
}
