// Reloads: HUP, `tsgunicorn reload`, a changed source file (`reload`) and a
// failing health check ask for one. One rollout runs at a time: a new generation
// boots beside the serving one, which retires only once every new worker serves.
// Requests that arrive meanwhile are queued and coalesced into the next rollout,
// which reads the settings and imports the code as they are when it starts: the
// newest win (Gunicorn queues a HUP the same way). Advanced by the master's step.
import type { ReloadOutcome } from '../control/protocol.js';
import type { Hooks } from '../hooks.js';
import type { Logger } from '../logging/logger.js';
import type { RestartReason } from '../metrics/aggregator.js';
import { resolveWorkerCount } from '../settings/kinds.js';
import type { ResolvedSettings } from '../settings/resolve.js';
import type { Settings } from '../settings/schema.js';
import type { Notifier } from '../systemd/notify.js';
import type { BootFailure } from './boot-failure.js';
import type { Workforce } from './workforce.js';

export type ReloadWaiter = (outcome: ReloadOutcome) => void;

interface ReloadRequest {
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

export interface ReloadHost {
  logger: Logger;
  notifier: Notifier;
  hooks: Hooks;
  workforce: Workforce;
  /** The serving generation, its settings and count. */
  serving(): { generation: number; settings: Settings; count: number };
  /** The config re-read, with bind kept (a new address needs a restart); throws a ConfigError. */
  reloadSettings(): ResolvedSettings;
  onReload(): Promise<void>;
  /** Every worker of the rollout serves: it becomes the serving generation. */
  commit(rollout: Rollout): void;
  /** Logs and records a failed reload. */
  failed(reason: string, detail: string | null): ReloadOutcome;
  wake(): void;
}

export class Reloads {
  private queued: ReloadRequest | null = null;
  current: Rollout | null = null;

  constructor(private readonly host: ReloadHost) {}

  /** Records a request; true when it waits for the running rollout. */
  request(reason: RestartReason, rereadConfig: boolean, waiter?: ReloadWaiter): boolean {
    const queued = (this.queued ??= { reason, rereadConfig, waiters: [] });
    // A reload replaces the workers too: it subsumes a health replacement.
    if (rereadConfig) Object.assign(queued, { reason, rereadConfig });
    if (waiter) queued.waiters.push(waiter);
    return this.current !== null;
  }

  /** TTIN, TTOU, scale during a rollout: the count it will commit. */
  changeCount(change: (count: number) => number): number | null {
    if (this.current) this.current.count = change(this.current.count);
    return this.current?.count ?? null;
  }

  /** One step: start a queued rollout, or advance the running one to its commit or failure. */
  step(): void {
    const rollout = this.current;
    if (!rollout) {
      const next = this.queued;
      this.queued = null;
      if (next) this.start(next);
      return;
    }
    const { workforce } = this.host;
    if (rollout.failure) {
      // The rest of the generation leaves first (one that serves finishes its requests: no client sees the
      // failed reload); then the failure is told, and the old generation serves on.
      const left = [...workforce.workers].filter((w) => w.generation === rollout.generation && w.state !== 'exited');
      for (const worker of left) worker.retire('reload');
      if (left.length === 0) this.settle(this.host.failed(rollout.failure.reason, rollout.failure.detail));
      return;
    }
    if (!rollout.started) return;
    workforce.balance(rollout.generation, rollout.settings, rollout.count);
    if (workforce.ready(rollout.generation) < rollout.count) return;
    this.host.commit(rollout);
    this.settle({ ok: true, generation: rollout.generation });
  }

  /** The master stops: every rollout, running or queued, is off. */
  abandon(): void {
    const outcome: ReloadOutcome = { ok: false, reason: 'the server is stopping' };
    if (this.current) this.settle(outcome);
    for (const waiter of this.queued?.waiters ?? []) waiter(outcome);
    this.queued = null;
  }

  private start(request: ReloadRequest): void {
    const { host } = this;
    host.notifier.reloading();
    const serving = host.serving();
    let settings = serving.settings;
    if (request.rereadConfig) {
      try {
        settings = host.reloadSettings().settings;
      } catch (err) {
        const outcome = host.failed(`bad config: ${(err as Error).message}`, null);
        for (const waiter of request.waiters) waiter(outcome);
        return host.wake(); // a reload queued meanwhile
      }
    }
    const count = request.rereadConfig ? resolveWorkerCount(settings.workers) : serving.count;
    const rollout: Rollout = {
      ...request,
      generation: serving.generation + 1,
      settings,
      count,
      started: !request.rereadConfig,
      failure: null,
    };
    this.current = rollout;
    if (rollout.started) return host.wake();
    void host.onReload().then(() => {
      rollout.started = true;
      host.wake();
    });
  }

  private settle(outcome: ReloadOutcome): void {
    for (const waiter of this.current?.waiters ?? []) waiter(outcome);
    this.current = null;
    this.host.wake(); // a reload queued meanwhile
  }
}
