// The master (Gunicorn's arbiter): owns the listening sockets, keeps the configured
// number of workers serving, replaces the dead, hung and worn-out ones, reloads
// without dropping requests, drains on stop, and keeps systemd informed.
//
// Signal, IPC, control and exit handlers only record what happened (a count, a
// request, an exit) and wake the master; one step, step(), run after every event
// and on a short tick, decides what follows: stop, reload, spawn, retire. So
// events compose in any order, and a stop wins over everything.
import { unlinkSync, writeFileSync } from 'node:fs';
import { EXIT, type ServedApp } from '../ipc.js';
import { heartbeatIntervalMs } from '../heartbeat.js';
import type { Hooks } from '../hooks.js';
import type { Logger } from '../logging/logger.js';
import { MAX_WORKERS, resolveWorkerCount } from '../settings/kinds.js';
import type { ResolvedSettings } from '../settings/resolve.js';
import { titleName, type Settings } from '../settings/schema.js';
import type { ListenSocket } from '../sockets.js';
import type { InheritedSocket } from '../systemd/listen-fds.js';
import type { ReloadFailure } from '../status-line.js';
import type { Notifier } from '../systemd/notify.js';
import type { ReloadOutcome } from '../control/protocol.js';
import { controlSocketPath } from '../control/paths.js';
import type { ControlServer } from '../control/server.js';
import { bootFailure, describeBootFailure, type BootFailure } from './boot-failure.js';
import { startControl } from './control-handlers.js';
import type { Liveness } from './liveness.js';
import { reapOrphansAsInit } from './reaper.js';
import { Reloads, type Rollout } from './reload.js';
import { checkBind, openSockets, workerEnv } from './listeners.js';
import { watchSources } from './source-watcher.js';
import type { ReportedFacts, Reporting } from './reporting.js';
import { installSignals } from './signals.js';
import { StopSequence } from './stop-sequence.js';
import { HealthSupervision, killHung, replaceOverMemory } from './supervision.js';
import { Workforce } from './workforce.js';
import type { WorkerProcess } from './worker-process.js';

export interface MasterOptions {
  resolved: ResolvedSettings;
  /** Re-reads the config file and environment for HUP. */
  reloadSettings: () => ResolvedSettings;
  logger: Logger;
  hooks: Hooks;
  notifier: Notifier;
  inherited: InheritedSocket[];
  version: string;
}

export class Master {
  private settings: Settings;
  private sockets: ListenSocket[] = [];
  /** The generation that serves (a rollout's becomes it when all its workers are ready). */
  private generation = 1;
  private desiredWorkers: number;
  private phase: 'booting' | 'running' | 'stopping' = 'booting';
  private readonly logger: Logger;
  private readonly workforce: Workforce;
  private readonly reloads: Reloads;
  private readonly stopSequence: StopSequence;
  private readonly healthSupervision = new HealthSupervision();
  // What handlers recorded for the next step.
  private readonly exits: WorkerProcess[] = [];
  private readonly killRequests = new Set<WorkerProcess>();
  private healthProbed = false;
  private firstBootFailure: BootFailure | null = null;
  private stepQueued = false;
  private tick: NodeJS.Timeout | undefined;
  private wasServing = false;
  private exitResolve!: (code: number) => void;
  readonly exited = new Promise<number>((resolve) => (this.exitResolve = resolve));
  private reporting: Reporting | null = null;
  private liveness: Liveness | null = null;
  private control: ControlServer | null = null;
  private closeWatcher = () => {};
  private serviceModules: Promise<[typeof import('./reporting.js'), typeof import('./liveness.js')]> | null = null;
  private readonly startedAt = Date.now();
  /** The last reload that failed, until one succeeds. */
  private reloadFailure: ReloadFailure | null = null;

  constructor(private readonly options: MasterOptions) {
    this.settings = options.resolved.settings;
    this.logger = options.logger;
    this.desiredWorkers = resolveWorkerCount(this.settings.workers);
    const changed = () => this.wake();
    this.workforce = new Workforce({
      logger: this.logger,
      spawnOptions: (settings) => ({
        settings,
        fds: this.sockets.map((s) => s.fd),
        secure: Boolean(settings.certfile),
        env: workerEnv(settings, this.sockets),
      }),
      changed,
      exited: (worker) => this.recordExit(worker),
      restarted: (reason) => this.reporting?.countRestart(reason),
    });
    this.reloads = new Reloads({
      logger: this.logger,
      notifier: options.notifier,
      hooks: options.hooks,
      workforce: this.workforce,
      serving: () => ({ generation: this.generation, settings: this.settings, count: this.desiredWorkers }),
      reloadSettings: () => this.reloadSettings(),
      onReload: () => options.hooks.run('on_reload', this.hookView()).then(() => undefined),
      commit: (rollout) => this.commit(rollout),
      failed: (reason, detail) => this.reloadFailed(reason, detail),
      wake: changed,
    });
    this.stopSequence = new StopSequence({
      logger: this.logger,
      settings: () => this.settings,
      workers: () => this.workforce.workers,
      draining: () => {
        this.liveness?.stopHealthCheck();
        this.reporting?.factsChanged(); // metrics and STATUS= say "draining" now
      },
      closing: () => this.closeServices(),
      finish: (code) => void this.finish(code),
      changed,
    });
  }

  /** Resolves with the process exit code once the master is done. */
  async run(): Promise<number> {
    const { logger, hooks } = this.options;
    process.title = `tsgunicorn: master [${titleName(this.settings)}]`;
    logger.info(`Starting tsgunicorn ${this.options.version}`);
    if (!(await hooks.run('on_starting', this.hookView()))) return EXIT.FAILURE;
    this.sockets = await openSockets(this.settings, this.options.inherited);
    checkBind(this.options.resolved, this.options.inherited, this.sockets, logger);
    if (this.settings.pidfile) writeFileSync(this.settings.pidfile, `${process.pid}\n`);
    installSignals(logger, {
      reload: () => void this.requestReload(),
      stop: (quick) => this.requestStop(quick),
      addWorker: (delta) => {
        const count = this.changeCount((n) => Math.min(MAX_WORKERS, Math.max(1, n + delta)));
        logger.info(`Handling signal: ${delta > 0 ? 'ttin' : 'ttou'}: ${count} workers`);
      },
      reopenLogs: () => this.reopenLogs(),
    });
    reapOrphansAsInit((pid) => [...this.workforce.workers].some((w) => w.pid === pid), logger);
    // Loaded while the workers boot, so that they do not delay them.
    this.serviceModules = Promise.all([import('./reporting.js'), import('./liveness.js')]);
    this.tick = setInterval(() => this.step(), heartbeatIntervalMs(this.settings.timeout));
    this.wake();
    return this.exited;
  }

  /** Runs the step soon, once for any number of events recorded meanwhile. */
  private wake(): void {
    if (this.stepQueued) return;
    this.stepQueued = true;
    setImmediate(() => this.step());
  }

  // ---- The step: what the recorded events lead to ----

  private step(): void {
    this.stepQueued = false;
    for (const worker of this.exits.splice(0)) this.judgeExit(worker);
    if (this.stopSequence.requested) return this.stepStopping();
    const { workers } = this.workforce;
    for (const worker of this.killRequests) {
      if (worker.state !== 'retiring') this.reporting?.countRestart('killed');
      worker.terminate('killed');
    }
    this.killRequests.clear();
    killHung(workers, this.settings, this.logger, (reason) => this.reporting?.countRestart(reason));
    replaceOverMemory(workers, this.settings, this.logger);
    if (this.healthProbed && this.liveness) {
      this.healthProbed = false;
      const watchdog = this.options.notifier.watchdogIntervalMs > 0;
      if (this.healthSupervision.decide(this.liveness, this.settings, watchdog, this.logger)) this.reloads.request('health', false);
    }
    if (this.phase === 'booting') return this.stepBoot();
    this.reloads.step();
    if (!this.reloads.current) this.workforce.balance(this.generation, this.settings, this.desiredWorkers);
  }

  /** What a worker's exit means, beyond the count: a failed boot fails its generation, or delays the next spawn. */
  private judgeExit(worker: WorkerProcess): void {
    if (this.stopSequence.requested || worker.everReady || worker.retireReason) return;
    if (worker.spawnError) return this.workforce.backOff({ forkError: worker.spawnError });
    const rollout = this.reloads.current;
    if (rollout?.generation === worker.generation) rollout.failure ??= bootFailure(worker, this.settings.app!);
    else if (this.phase === 'booting') this.firstBootFailure ??= bootFailure(worker, this.settings.app!);
    else if (worker.generation === this.generation)
      this.workforce.backOff({ bootFailure: describeBootFailure(worker, this.settings.app!) });
  }

  private stepBoot(): void {
    const failure = this.firstBootFailure;
    if (failure) {
      this.logger.error(
        failure.detail ? `Failed to load the app:\n${failure.detail}` : failure.reason.replace(/^./, (c) => c.toUpperCase()),
      );
      this.stopSequence.halt(failure.code);
      return this.stepStopping();
    }
    this.workforce.balance(this.generation, this.settings, this.desiredWorkers);
    if (this.workforce.ready(this.generation) < this.desiredWorkers) return;
    this.phase = 'running';
    void this.startServices();
  }

  private stepStopping(): void {
    if (this.phase !== 'stopping') {
      this.wasServing = this.phase === 'running';
      if (this.firstBootFailure === null) this.options.notifier.stopping();
      this.phase = 'stopping';
      this.reloads.abandon();
      this.workforce.stopRetrying();
    }
    this.stopSequence.step(this.wasServing);
  }

  /** All the new generation serves: it takes over, with its settings and count; the old one retires. */
  private commit(rollout: Rollout): void {
    this.settings = rollout.settings;
    this.desiredWorkers = rollout.count;
    this.generation = rollout.generation;
    this.reloadFailure = null;
    this.reporting?.countReload('success');
    this.reporting?.factsChanged();
    this.liveness?.followHealthCheckPath();
    this.healthProbed = true;
    for (const worker of this.workforce.workers) {
      if (worker.generation === this.generation || worker.state === 'retiring' || worker.state === 'exited') continue;
      this.reporting?.countRestart(rollout.reason);
      worker.retire(rollout.reason);
    }
    this.logger.info(`Reloaded: ${this.desiredWorkers} new worker(s) serving`);
    this.logListenRedirect(this.servedApp());
    this.options.notifier.ready();
  }

  /** HUP's settings: the config re-read, with bind kept (a new address needs a restart). */
  private reloadSettings(): ResolvedSettings {
    const next = this.options.reloadSettings();
    const { inherited } = this.options;
    if (JSON.stringify(next.settings.bind) !== JSON.stringify(this.settings.bind) && inherited.length === 0) {
      this.logger.warning('bind changed in the config: restart the server to listen on the new addresses');
      next.settings.bind = this.settings.bind;
    }
    checkBind(next, inherited, this.sockets, this.logger);
    return next;
  }

  // One entry per failed reload: the reason on its first line, then the stack if there is one.
  private reloadFailed(reason: string, detail: string | null): ReloadOutcome {
    this.logger.error(`Reload failed: ${reason}; generation ${this.generation} keeps serving${detail ? `\n${detail}` : ''}`);
    this.reloadFailure = { at: new Date().toTimeString().slice(0, 8), reason, generation: this.generation };
    this.reporting?.countReload('failure');
    this.reporting?.factsChanged();
    this.options.notifier.ready();
    return { ok: false, reason };
  }

  // ---- What handlers record ----

  private requestReload(): Promise<ReloadOutcome> {
    return new Promise((resolve) => {
      if (this.reloads.request('reload', true, resolve))
        this.logger.info('Reload requested while reloading: queued (the newest code and settings are loaded next)');
      this.wake();
    });
  }

  private requestStop(quick: boolean): void {
    this.stopSequence.request(quick);
    this.wake();
  }

  /** TTIN, TTOU, scale: the count from now on, and of a rollout under way (which would commit its own). */
  private changeCount(change: (count: number) => number): number {
    this.desiredWorkers = change(this.desiredWorkers);
    const rolloutCount = this.reloads.changeCount(change);
    this.wake();
    return rolloutCount ?? this.desiredWorkers;
  }

  private recordExit(worker: WorkerProcess): void {
    this.reporting?.workerExited(worker);
    if (worker.spawnError === null) void this.options.hooks.run('worker_exit', this.hookView(), { pid: worker.pid, id: worker.id });
    const stopping = this.stopSequence.requested;
    if (stopping || (worker.retireReason && worker.everReady)) this.logger.info(`Worker exiting (pid: ${worker.pid})`);
    else if (worker.exitSignal && worker.everReady) this.logger.error(`Worker (pid:${worker.pid}) was sent ${worker.exitSignal}!`);
    else if (worker.everReady) this.logger.error(`Worker (pid:${worker.pid}) exited with code ${worker.exitCode}`);
    if (!worker.retireReason && worker.everReady && !stopping) this.reporting?.countRestart('crash');
    this.exits.push(worker);
  }

  private reopenLogs(): void {
    this.logger.reopen();
    for (const worker of this.workforce.workers) worker.send({ type: 'reopen-logs' });
  }

  // ---- Services that start once the first generation serves ----

  private async startServices(): Promise<void> {
    const { logger, notifier, hooks } = this.options;
    const served = this.servedApp();
    // Said once the app is known: a server script's own TLS makes them https.
    if (served?.interface === 'server' && served.secure)
      for (const socket of this.sockets) socket.label = socket.label.replace(/^http:/, 'https:');
    for (const socket of this.sockets) logger.info(`Listening at: ${socket.label} (${process.pid})`);
    logger.info(
      `Booted ${this.desiredWorkers} worker${this.desiredWorkers === 1 ? '' : 's'} (${describeServed(served, this.settings.app!)})`,
    );
    this.logListenRedirect(served);
    const settings = () => this.settings;
    const [{ Reporting }, { Liveness }] = await this.serviceModules!;
    const reporting = new Reporting({ settings, logger, notifier, facts: () => this.reportedFacts() });
    await reporting.start();
    this.reporting = reporting;
    const liveness = new Liveness({
      settings,
      logger,
      notifier,
      healthAddress: this.sockets.find((s) => s.target !== null)?.target ?? null,
      tls: () => this.servesTls(),
      workers: () => this.workforce.workers,
    });
    liveness.on('probe', () => {
      this.healthProbed = true;
      this.wake();
    });
    liveness.start();
    this.liveness = liveness;
    const path = controlSocketPath(this.settings.control_socket);
    if (path) this.control = await startControl(path, this.settings.control_socket_group, this.controlHost());
    // A stop while these started: they end with the master, and systemd hears no READY=1 after STOPPING=1.
    if (this.stopSequence.requested) return this.closeServices();
    notifier.ready();
    await hooks.run('when_ready', this.hookView());
    if (this.settings.reload && !this.stopSequence.requested) this.closeWatcher = watchSources(logger, () => void this.requestReload());
  }

  private controlHost() {
    return {
      logger: this.logger,
      status: () => ({
        pid: process.pid,
        name: titleName(this.settings),
        version: this.options.version,
        uptimeSec: (Date.now() - this.startedAt) / 1000,
        generation: this.generation,
        phase: this.reloads.current && this.phase === 'running' ? ('reloading' as const) : this.phase,
        workersWanted: this.desiredWorkers,
        listeners: this.sockets.map((s) => s.label),
        health: this.reportedFacts().health,
        reloadFailure: this.reloadFailure && { at: this.reloadFailure.at, reason: this.reloadFailure.reason },
      }),
      reporting: () => this.reporting,
      workers: () => this.workforce.workers,
      stopping: () => this.stopSequence.requested,
      reload: () => this.requestReload(),
      scale: (count: number) => this.changeCount(() => count),
      kill: (worker: WorkerProcess) => {
        this.killRequests.add(worker);
        this.wake();
      },
      reopenLogs: () => this.reopenLogs(),
    };
  }

  /** The listeners close: nothing but the workers' exits matters from now on. */
  private closeServices(): void {
    this.reporting?.stop();
    this.liveness?.stop();
    this.closeWatcher();
  }

  private async finish(code: number): Promise<void> {
    clearInterval(this.tick);
    for (const socket of this.sockets) socket.close();
    this.control?.close();
    if (this.settings.pidfile) {
      try {
        unlinkSync(this.settings.pidfile);
      } catch {
        // Already removed.
      }
    }
    await this.options.hooks.run('on_exit', this.hookView());
    this.logger.info('Shutting down: Master');
    this.exitResolve(code);
  }

  // ---- Facts ----

  /** How the current generation serves the app, as its first ready worker said. */
  private servedApp(): ServedApp | null {
    for (const worker of this.workforce.workers) if (worker.generation === this.generation && worker.served) return worker.served;
    return null;
  }

  /** The sockets serve HTTPS: tsgunicorn's certfile, or a server script's own TLS. */
  private servesTls(): boolean {
    const served = this.servedApp();
    return Boolean(this.settings.certfile) || (served?.interface === 'server' && served.secure);
  }

  // A server script named an address of its own, which is never bound: say once where it is served instead.
  private logListenRedirect(served: ServedApp | null): void {
    if (served?.interface !== 'server') return;
    const module = this.settings.app!.split(':')[0]!;
    this.logger.info(`${module} asked for ${served.asked}; serving on ${this.sockets.map((s) => s.label).join(', ')}`);
  }

  /** What metrics and STATUS= report, read at each report. */
  private reportedFacts(): ReportedFacts {
    return {
      workers: [...this.workforce.workers],
      desiredWorkers: this.desiredWorkers,
      health: this.liveness?.health.status ?? 'off',
      reloadFailure: this.reloadFailure,
      draining: this.stopSequence.draining,
    };
  }

  /** What hooks receive as `server`. */
  private hookView() {
    return { pid: process.pid, settings: this.settings, workers: [...this.workforce.workers].map((w) => w.pid) };
  }
}

function describeServed(served: ServedApp | null, app: string): string {
  return served?.interface === 'server' ? `server script ${app}` : `${served?.interface ?? 'unknown'} app ${app}`;
}
