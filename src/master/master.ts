// The master (Gunicorn's arbiter): owns the listening sockets, keeps the configured
// number of workers serving, replaces the dead, hung and worn-out ones, reloads
// without dropping requests, drains on stop, and keeps systemd informed.
import { unlinkSync, watch, writeFileSync } from 'node:fs';
import { EXIT, type ServedApp } from '../ipc.js';
import { heartbeatIntervalMs } from '../heartbeat.js';
import type { Hooks } from '../hooks.js';
import type { Logger } from '../logging/logger.js';
import { MAX_WORKERS, resolveWorkerCount, timerDelay } from '../settings/kinds.js';
import type { ResolvedSettings } from '../settings/resolve.js';
import { titleName, type Settings } from '../settings/schema.js';
import { bindAddresses, inheritSocket, type ListenSocket } from '../sockets.js';
import { bindDisagreement } from '../systemd/bind-check.js';
import type { InheritedSocket } from '../systemd/listen-fds.js';
import { serviceUnit } from '../systemd/sandbox.js';
import { loadErrorMessage, withSyntaxLocation } from '../syntax-location.js';
import type { ReloadFailure } from '../status-line.js';
import { MODULE_EXTENSIONS } from '../app/spec.js';
import { systemdChildEnv, type Notifier } from '../systemd/notify.js';
import type { Liveness } from './liveness.js';
import type { ReportedFacts, Reporting } from './reporting.js';
import type { RestartReason } from '../metrics/aggregator.js';
import { reapOrphansAsInit } from './reaper.js';
import { WorkerProcess } from './worker-process.js';
import { ControlError, type ControlRequest, type ReloadOutcome, type StatusReport } from '../control/protocol.js';
import { controlSocketPath } from '../control/paths.js';
import type { ControlServer } from '../control/server.js';

/** Why a generation did not boot: one line for logs, STATUS= and clients, and the full text (a stack) when there is one. */
interface BootFailure {
  code: number;
  reason: string;
  detail: string | null;
}

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
  private readonly workers = new Set<WorkerProcess>();
  private desiredWorkers: number;
  private generation = 1;
  private nextWorkerId = 1;
  private phase: 'booting' | 'running' | 'reloading' | 'stopping' = 'booting';
  private quickStop = false;
  private readonly logger: Logger;
  private readonly timers: NodeJS.Timeout[] = [];
  private respawnDelayMs = 0;
  private exitResolve!: (code: number) => void;
  readonly exited = new Promise<number>((resolve) => (this.exitResolve = resolve));
  private reporting: Reporting | null = null;
  private liveness: Liveness | null = null;
  /** Consecutive failures when the workers were replaced for a failing health check; null while it passes. */
  private failuresAtHealthReplacement: number | null = null;
  private control: ControlServer | null = null;
  private readonly startedAt = Date.now();
  /** The last reload that failed, until one succeeds. */
  private reloadFailure: ReloadFailure | null = null;

  constructor(private readonly options: MasterOptions) {
    this.settings = options.resolved.settings;
    this.logger = options.logger;
    this.desiredWorkers = resolveWorkerCount(this.settings.workers);
  }

  /** Resolves with the process exit code once the master is done. */
  async run(): Promise<number> {
    const { logger, hooks, notifier } = this.options;
    process.title = `tsgunicorn: master [${titleName(this.settings)}]`;
    logger.info(`Starting tsgunicorn ${this.options.version}`);
    if (!(await hooks.run('on_starting', this.hookView()))) return EXIT.FAILURE;
    this.sockets = await this.openSockets(this.settings);
    for (const socket of this.sockets) logger.info(`Listening at: ${socket.label} (${process.pid})`);
    this.checkBind(this.options.resolved);
    if (this.settings.pidfile) writeFileSync(this.settings.pidfile, `${process.pid}\n`);
    this.installSignals();
    reapOrphansAsInit((pid) => [...this.workers].some((w) => w.pid === pid), logger);

    const booting = this.bootGeneration(this.settings, this.desiredWorkers);
    // Loaded while the workers boot, so that they do not delay them.
    const reportingModule = import('./reporting.js');
    const livenessModule = import('./liveness.js');
    const booted = await booting;
    if (booted !== true) {
      this.logger.error(booted.detail ? `Failed to load the app:\n${booted.detail}` : booted.reason.replace(/^./, (c) => c.toUpperCase()));
      await this.halt(booted.code);
      return this.exited;
    }
    this.phase = 'running';
    const served = this.servedApp();
    logger.info(
      `Booted ${this.desiredWorkers} worker${this.desiredWorkers === 1 ? '' : 's'} (${describeServed(served, this.settings.app!)})`,
    );
    this.logListenRedirect(served);
    const settings = () => this.settings;
    const { Reporting } = await reportingModule;
    this.reporting = new Reporting({ settings, logger, notifier, facts: () => this.reportedFacts() });
    await this.reporting.start();
    const { Liveness } = await livenessModule;
    this.liveness = new Liveness({
      settings,
      logger,
      notifier,
      healthAddress: this.sockets.find((s) => s.target !== null)?.target ?? null,
      tls: () => this.servesTls(),
      workers: () => this.workers,
    });
    this.liveness.on('probe', () => this.superviseHealth());
    this.liveness.start();
    await this.startControl();
    notifier.ready();
    await hooks.run('when_ready', this.hookView());
    this.startSupervision();
    return this.exited;
  }

  /** How the current generation serves the app, as its first ready worker said. */
  private servedApp(): ServedApp | null {
    for (const worker of this.workers) if (worker.generation === this.generation && worker.served) return worker.served;
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

  private describeBootFailure(worker: WorkerProcess, code: number | null): string {
    if (worker.appError) return `Failed to load the app:\n${this.appErrorText(worker.appError)}`;
    if (code === EXIT.APP_LOAD_ERROR) return `Failed to load the app: the worker (pid:${worker.pid}) exited while importing it`;
    return `Worker (pid:${worker.pid}) failed to boot (exit code ${code ?? 'by signal'})`;
  }

  private bootFailure(worker: WorkerProcess, code: number | null): BootFailure {
    const exit = code === EXIT.APP_LOAD_ERROR ? EXIT.APP_LOAD_ERROR : EXIT.WORKER_BOOT_ERROR;
    if (!worker.appError) return { code: exit, reason: this.describeBootFailure(worker, code).replace(/^Failed/, 'failed'), detail: null };
    const located = this.appErrorText(worker.appError);
    const where = located === worker.appError ? '' : ` at ${located.split('\n')[0]}`;
    return { code: exit, reason: `the app failed to load: ${loadErrorMessage(located)}${where}`, detail: located };
  }

  /** A worker's load error, located when it is a syntax error that names no file. */
  private appErrorText(text: string): string {
    return withSyntaxLocation(text, this.settings.app!);
  }

  /** Says when the config's bind is not where systemd's sockets listen (bind edited, socket unit not restarted). */
  private checkBind({ settings, sources }: ResolvedSettings): void {
    if (this.options.inherited.length === 0 || sources.bind.kind !== 'file') return;
    const where = `${sources.bind.file}:${sources.bind.line}`;
    const warning = bindDisagreement(
      settings.bind,
      this.sockets.map((s) => s.address),
      where,
      serviceUnit(),
    );
    if (warning) this.logger.warning(warning);
  }

  private async openSockets(settings: Settings): Promise<ListenSocket[]> {
    const scheme = settings.certfile ? 'https' : 'http';
    if (this.options.inherited.length > 0) {
      // Socket activation: systemd's sockets take precedence over `bind`.
      return this.options.inherited.map(({ fd, name }) => inheritSocket(fd, `fd ${fd} ${name} from systemd`, scheme));
    }
    return bindAddresses(settings.bind, scheme);
  }

  private workerEnv(settings: Settings): NodeJS.ProcessEnv {
    const env = systemdChildEnv(process.env);
    for (const pair of settings.raw_env) {
      const eq = pair.indexOf('=');
      env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    // Many apps read PORT (Next.js's server.js, `app.listen(process.env.PORT)`); unless the
    // user set it, it names the port they are really served on.
    const tcp = this.sockets.find((s) => s.target !== null && 'port' in s.target)?.target;
    if (env.PORT === undefined && tcp && 'port' in tcp) env.PORT = String(tcp.port);
    return env;
  }

  private spawnWorker(settings: Settings, generation: number): WorkerProcess {
    const worker = new WorkerProcess({
      settings,
      fds: this.sockets.map((s) => s.fd),
      secure: Boolean(settings.certfile),
      env: this.workerEnv(settings),
      generation,
      id: this.nextWorkerId++,
    });
    this.workers.add(worker);
    this.logger.info(`Booting worker with pid: ${worker.pid}`);
    worker.on('heartbeat', () => this.checkMemory(worker));
    worker.on('recycle', (reason: RestartReason) => {
      this.logger.info(`Worker (pid:${worker.pid}) reached max_requests: replacing it`);
      this.recycle(worker, reason);
    });
    worker.once('ready', () => this.logger.debug(`Worker (pid:${worker.pid}) ready in ${Date.now() - worker.startedAt} ms`));
    worker.once('exit', (code: number | null, signal: NodeJS.Signals | null) => this.onWorkerExit(worker, code, signal));
    return worker;
  }

  /**
   * Starts `count` workers of a new generation and waits until all accept
   * connections. Resolves true, or why not (the failed workers are gone by then).
   */
  private bootGeneration(settings: Settings, count: number): Promise<true | BootFailure> {
    const generation = this.generation;
    const started = Array.from({ length: count }, () => this.spawnWorker(settings, generation));
    return new Promise((resolve) => {
      const ready = new Set<WorkerProcess>();
      let failed = false;
      for (const worker of started) {
        worker.once('ready', () => {
          ready.add(worker);
          if (!failed && ready.size === count) resolve(true);
        });
        worker.once('exit', (code: number | null) => {
          if (failed || ready.has(worker) || ready.size === count) return;
          failed = true;
          const result = this.bootFailure(worker, code);
          // Resolved once the whole failed generation is gone, so what follows sees only the workers that serve.
          const others = started.filter((other) => other !== worker && other.state !== 'exited');
          let left = others.length;
          if (left === 0) resolve(result);
          for (const other of others) {
            other.once('exit', () => --left === 0 && resolve(result));
            // One that already serves finishes its requests first: no client sees the failed reload.
            if (other.state === 'ready') other.retire('reload');
            else other.terminate('reload');
          }
        });
      }
    });
  }

  private onWorkerExit(worker: WorkerProcess, code: number | null, signal: NodeJS.Signals | null): void {
    this.workers.delete(worker);
    this.reporting?.workerExited(worker);
    void this.options.hooks.run('worker_exit', this.hookView(), { pid: worker.pid, id: worker.id });
    if (this.phase === 'stopping' || (worker.retireReason && worker.everReady)) {
      this.logger.info(`Worker exiting (pid: ${worker.pid})`);
    } else if (signal && worker.everReady) {
      this.logger.error(`Worker (pid:${worker.pid}) was sent ${signal}!`);
    } else if (worker.everReady) {
      this.logger.error(`Worker (pid:${worker.pid}) exited with code ${code}`);
    }
    if (!worker.retireReason && worker.everReady && this.phase !== 'stopping') this.reporting?.countRestart('crash');
    if (this.phase === 'stopping') {
      if (this.workers.size === 0) void this.finishStop();
      return;
    }
    // A generation still booting is judged by bootGeneration; an old one retires.
    if (this.phase === 'booting' || this.phase === 'reloading' || worker.generation !== this.generation) return;
    if (!worker.everReady && !worker.retireReason) {
      // A replacement that cannot boot: keep trying, but not in a tight loop.
      this.respawnDelayMs = Math.min(30_000, Math.max(1000, this.respawnDelayMs * 2));
      this.logger.error(this.describeBootFailure(worker, worker.child.exitCode));
      this.logger.error(`Worker failed to boot; retrying in ${this.respawnDelayMs / 1000} s`);
      this.timers.push(setTimeout(() => this.maintainWorkerCount(), this.respawnDelayMs));
      return;
    }
    this.maintainWorkerCount();
  }

  /** Spawns or retires workers of the current generation until the count is right. */
  private maintainWorkerCount(): void {
    if (this.phase !== 'running') return;
    const serving = [...this.workers].filter((w) => w.generation === this.generation && w.state !== 'retiring' && !w.replacing);
    for (let i = serving.length; i < this.desiredWorkers; i++) {
      const worker = this.spawnWorker(this.settings, this.generation);
      worker.once('ready', () => (this.respawnDelayMs = 0));
    }
    const surplus = serving.length - this.desiredWorkers;
    if (surplus > 0) {
      const youngestFirst = serving.sort((a, b) => b.startedAt - a.startedAt);
      for (const worker of youngestFirst.slice(0, surplus)) worker.retire('reload');
    }
  }

  /** Replace one worker: its successor must be ready before it stops accepting. */
  private recycle(worker: WorkerProcess, reason: RestartReason): void {
    if (worker.replacing || worker.state !== 'ready' || this.phase !== 'running') return;
    worker.setReplacing(true);
    const successor = this.spawnWorker(this.settings, this.generation);
    successor.once('ready', () => {
      this.reporting?.countRestart(reason);
      worker.retire(reason);
    });
    // A successor that fails to boot leaves the worker serving, to be tried again.
    successor.once('exit', () => {
      if (!successor.everReady) worker.setReplacing(false);
    });
  }

  private checkMemory(worker: WorkerProcess): void {
    const limitMb = this.settings.max_worker_memory;
    const rss = worker.lastBeat?.rss ?? 0;
    if (limitMb > 0 && rss > limitMb * 1024 * 1024 && !worker.replacing && worker.state === 'ready') {
      this.logger.warning(
        `Worker (pid:${worker.pid}) uses ${Math.round(rss / 1048576)} MB, over max_worker_memory ${limitMb} MB: replacing it`,
      );
      this.recycle(worker, 'memory');
    }
  }

  private startSupervision(): void {
    const beatMs = heartbeatIntervalMs(this.settings.timeout);
    const check = setInterval(() => this.checkTimeouts(), beatMs);
    this.timers.push(check);
    if (this.settings.reload) this.watchSources();
  }

  // `reload`, for development: a changed source file reloads like HUP does.
  private watchSources(): void {
    const root = process.cwd();
    let pending: NodeJS.Timeout | undefined;
    const watcher = watch(root, { recursive: true }, (_event, file) => {
      if (!file || /(^|\/)(node_modules|\.[^/]+)(\/|$)/.test(file)) return;
      if (!MODULE_EXTENSIONS.test(file) && !file.endsWith('.json')) return;
      clearTimeout(pending);
      pending = setTimeout(() => {
        this.logger.info(`${file} changed: reloading`);
        void this.reload();
      }, 200);
    });
    watcher.on('error', (err) => this.logger.warning(`reload: cannot watch ${root} (${err.message}); edit, then send HUP`));
    this.closeWatcher = () => watcher.close();
  }

  private closeWatcher = () => {};

  private checkTimeouts(): void {
    const timeoutMs = this.settings.timeout * 1000;
    if (timeoutMs <= 0 || this.phase === 'stopping') return;
    const now = Date.now();
    for (const worker of this.workers) {
      if (worker.state === 'booting' || worker.state === 'exited' || worker.retireReason === 'timeout') continue;
      if (now - worker.lastProgressAt <= timeoutMs) continue;
      const oldest = worker.lastBeat?.oldest;
      const doing = oldest ? `: ${oldest.label} in flight for ${((now - oldest.startedAt) / 1000).toFixed(1)} s` : ': no request in flight';
      this.logger.critical(`WORKER TIMEOUT (pid:${worker.pid})${doing}`);
      if (worker.state !== 'retiring') this.reporting?.countRestart('timeout');
      // Gunicorn sends a hung worker SIGABRT, whose handler exits, and SIGKILL only
      // if it is still there at the next check. A blocked event loop runs no signal
      // handler, and the heartbeat has already named the hung request: SIGKILL now.
      worker.terminate('timeout');
    }
  }

  // After each health check probe (and a reload, which may turn the check off):
  // what the record leads to. failure_threshold failures in a row replace all
  // workers; as many again after that stop the watchdog pings, so that systemd
  // restarts the service.
  private superviseHealth(): void {
    const liveness = this.liveness;
    if (!liveness) return;
    const { status, consecutiveFailures, lastFailure } = liveness.health;
    if (status === 'unknown') return;
    const replacedAt = this.failuresAtHealthReplacement;
    if (status !== 'unhealthy') {
      if (replacedAt === null) return;
      this.failuresAtHealthReplacement = null;
      liveness.watchdogStopped = false;
      if (status === 'healthy') this.logger.info('Health check passes again');
    } else if (replacedAt === null) {
      this.logger.error(`Health check failed ${consecutiveFailures} times (${lastFailure}): replacing all workers`);
      this.failuresAtHealthReplacement = consecutiveFailures;
      void this.rollOver('health');
    } else if (
      this.options.notifier.watchdogIntervalMs > 0 &&
      !liveness.watchdogStopped &&
      consecutiveFailures >= replacedAt + this.settings.health_check_failure_threshold
    ) {
      this.logger.critical('Health check still failing after the workers were replaced: stopping watchdog pings');
      liveness.watchdogStopped = true;
    }
  }

  // HUP: a new generation with fresh code and re-read settings; the old one retires
  // only once every new worker accepts connections.
  private async reload(): Promise<ReloadOutcome> {
    if (this.phase !== 'running') {
      this.logger.warning(`Reload requested while ${this.phase}; ignored`);
      return { ok: false, reason: `the server is ${this.phase}: try again when it is running` };
    }
    this.options.notifier.reloading();
    let next: ResolvedSettings;
    try {
      next = this.options.reloadSettings();
    } catch (err) {
      return this.reloadFailed(`bad config: ${(err as Error).message}`, null);
    }
    await this.options.hooks.run('on_reload', this.hookView());
    const rebind = JSON.stringify(next.settings.bind) !== JSON.stringify(this.settings.bind) && this.options.inherited.length === 0;
    if (rebind) {
      this.logger.warning('bind changed in the config: restart the server to listen on the new addresses');
      next.settings.bind = this.settings.bind;
    }
    this.checkBind(next);
    return this.rollOver('reload', next.settings, resolveWorkerCount(next.settings.workers));
  }

  /**
   * Starts a new generation of `count` workers; on success retires the old one
   * and commits the settings and the count, on failure keeps all as they were.
   */
  private async rollOver(reason: RestartReason, settings: Settings = this.settings, count = this.desiredWorkers): Promise<ReloadOutcome> {
    if (this.phase !== 'running') return { ok: false, reason: `the server is ${this.phase}` };
    this.phase = 'reloading';
    const previous = this.generation;
    this.generation++;
    const result = await this.bootGeneration(settings, count);
    if (this.phase !== 'reloading') return { ok: false, reason: 'the server is stopping' };
    if (result !== true) {
      this.generation = previous;
      this.phase = 'running';
      // Old workers that exited meanwhile were not replaced.
      this.maintainWorkerCount();
      return this.reloadFailed(result.reason, result.detail);
    }
    this.settings = settings;
    this.desiredWorkers = count;
    this.reloadFailure = null;
    this.reporting?.countReload('success');
    this.reporting?.factsChanged();
    this.liveness?.followHealthCheckPath();
    this.superviseHealth();
    for (const worker of this.workers) {
      if (worker.generation === previous || worker.generation < this.generation) {
        this.reporting?.countRestart(reason);
        worker.retire(reason);
      }
    }
    this.phase = 'running';
    this.logger.info(`Reloaded: ${this.desiredWorkers} new worker(s) serving`);
    this.logListenRedirect(this.servedApp());
    this.options.notifier.ready();
    return { ok: true, generation: this.generation };
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

  private installSignals(): void {
    process.on('SIGHUP', () => {
      this.logger.info('Handling signal: hup');
      void this.reload();
    });
    process.on('SIGTERM', () => this.stop(this.phase === 'stopping'));
    process.on('SIGINT', () => this.stop(true));
    process.on('SIGQUIT', () => this.stop(true));
    process.on('SIGTTIN', () => {
      this.desiredWorkers = Math.min(MAX_WORKERS, this.desiredWorkers + 1);
      this.logger.info(`Handling signal: ttin: ${this.desiredWorkers} workers`);
      this.maintainWorkerCount();
    });
    process.on('SIGTTOU', () => {
      this.desiredWorkers = Math.max(1, this.desiredWorkers - 1);
      this.logger.info(`Handling signal: ttou: ${this.desiredWorkers} workers`);
      this.maintainWorkerCount();
    });
    process.on('SIGUSR1', () => {
      this.logger.info('Handling signal: usr1: reopening log files');
      this.reopenLogs();
    });
    // Gunicorn's USR2 (binary upgrade) has no equivalent: a reload does it. Its default action would end the master.
    process.on('SIGUSR2', () => this.logger.warning('Handling signal: usr2: not used (to load new code: systemctl reload)'));
  }

  private reopenLogs(): void {
    this.logger.reopen();
    for (const worker of this.workers) worker.send({ type: 'reopen-logs' });
  }

  // The control socket (src/control/): a missing or busy socket costs the
  // operator's commands, never the server.
  private async startControl(): Promise<void> {
    const path = controlSocketPath(this.settings.control_socket);
    if (!path) return;
    try {
      const { startControlServer } = await import('../control/server.js');
      this.control = await startControlServer(path, this.settings.control_socket_group, {
        status: () => this.statusReport(),
        reload: (request) => this.controlReload(request),
        scale: ({ workers }) => this.scale(workers),
        'kill-worker': ({ pid }) => this.killWorker(pid),
        'reopen-logs': () => {
          this.logger.info('Reopening log files (control socket)');
          this.reopenLogs();
          return {};
        },
      });
      this.logger.info(`Control socket at: ${path}`);
    } catch (err) {
      this.logger.warning(
        `control socket ${path}: ${(err as Error).message}; tsgunicorn status, reload and scale cannot reach this server`,
      );
    }
  }

  private async statusReport(): Promise<StatusReport> {
    const facts = await this.reporting!.controlFacts();
    const now = Date.now();
    const { window } = facts;
    const measured = window.windowSec !== null;
    return {
      pid: process.pid,
      name: titleName(this.settings),
      version: this.options.version,
      uptimeSec: (now - this.startedAt) / 1000,
      generation: this.generation,
      phase: this.phase,
      workersWanted: this.desiredWorkers,
      listeners: this.sockets.map((s) => s.label),
      health: this.reportedFacts().health,
      requests: {
        total: window.requests,
        windowSec: window.windowSec,
        ratePerSec: measured ? window.ratePerSec : null,
        p50Ms: window.p50Ms ?? null,
        p99Ms: window.p99Ms ?? null,
      },
      restarts: facts.restarts,
      reloadFailure: this.reloadFailure && { at: this.reloadFailure.at, reason: this.reloadFailure.reason },
      workers: [...this.workers].filter((w) => w.state !== 'exited').map((w) => w.report(now, facts.requestsOf(w.pid))),
    };
  }

  private async controlReload({ wait }: Extract<ControlRequest, { cmd: 'reload' }>): Promise<ReloadOutcome | { started: true }> {
    if (this.phase !== 'running') throw new ControlError(`the server is ${this.phase}: try again when it is running`);
    this.logger.info('Reload requested (control socket)');
    const outcome = this.reload();
    if (!wait) return { started: true };
    const result = await outcome;
    if (!result.ok) throw new ControlError(result.reason);
    return result;
  }

  private scale(count: number): { workers: number } {
    if (this.phase !== 'running') throw new ControlError(`the server is ${this.phase}: try again when it is running`);
    this.desiredWorkers = count;
    this.logger.info(`Scaling to ${count} worker${count === 1 ? '' : 's'} (control socket)`);
    this.maintainWorkerCount();
    return { workers: count };
  }

  private killWorker(pid: number): { killed: number } {
    const worker = [...this.workers].find((w) => w.pid === pid && w.state !== 'exited');
    if (!worker) throw new ControlError(`no worker with pid ${pid} (workers: ${[...this.workers].map((w) => w.pid).join(', ')})`);
    this.logger.warning(`Worker (pid:${pid}) killed on request (kill-worker)`);
    if (worker.state !== 'retiring') this.reporting?.countRestart('killed');
    worker.terminate('killed');
    return { killed: pid };
  }

  /** TERM: graceful (after drain_delay); INT/QUIT, or a second TERM: quick. */
  stop(quick: boolean): void {
    if (this.phase === 'stopping') {
      if (quick && !this.quickStop) {
        this.quickStop = true;
        this.logger.info('Quick shutdown');
        if (this.drainTimer !== null) {
          clearTimeout(this.drainTimer);
          this.drainTimer = null;
          this.closeDown(true, false);
          return;
        }
        for (const worker of this.workers) worker.kill('SIGQUIT');
      }
      return;
    }
    const wasBooting = this.phase === 'booting';
    this.phase = 'stopping';
    this.quickStop = quick;
    this.options.notifier.stopping();
    if (!quick && !wasBooting && this.workers.size > 0 && this.settings.drain_delay > 0) {
      // The balancer takes the host out on its failing health checks while every
      // other request is still served; responses close their connections, so none
      // is idle in the balancer's pool when the listeners close.
      this.logger.info(
        `Graceful shutdown: draining for ${this.settings.drain_delay} s (health check path answers 503), then finishing in-flight requests`,
      );
      this.liveness?.stopHealthCheck();
      for (const worker of this.workers) worker.send({ type: 'drain' });
      this.drainTimer = setTimeout(() => {
        this.drainTimer = null;
        this.closeDown(false, false);
      }, this.settings.drain_delay * 1000);
      this.reporting?.factsChanged(); // metrics and STATUS= say "draining" now
      return;
    }
    this.logger.info(quick ? 'Quick shutdown' : 'Graceful shutdown: finishing in-flight requests');
    this.closeDown(quick, wasBooting);
  }

  private drainTimer: NodeJS.Timeout | null = null;

  /** Workers stop accepting and finish (or, quick, leave at once); the master follows. */
  private closeDown(quick: boolean, wasBooting: boolean): void {
    this.reporting?.stop();
    this.liveness?.stop();
    for (const timer of this.timers) clearTimeout(timer);
    this.closeWatcher();
    for (const worker of this.workers) {
      if (quick) worker.kill('SIGQUIT');
      else worker.stop();
    }
    // Workers enforce graceful_timeout themselves; this only catches the stuck.
    const limit = setTimeout(
      () => {
        for (const worker of this.workers) worker.kill('SIGKILL');
      },
      quick ? 1000 : timerDelay(this.settings.graceful_timeout * 1000 + 2000),
    );
    limit.unref();
    if (this.workers.size === 0 || wasBooting) void this.finishStop();
  }

  private async halt(code: number): Promise<void> {
    this.phase = 'stopping';
    for (const worker of this.workers) worker.kill('SIGKILL');
    await this.finishStop(code);
  }

  private finishing = false;
  private async finishStop(code: number = EXIT.OK): Promise<void> {
    if (this.finishing) return;
    this.finishing = true;
    while (this.workers.size > 0) await new Promise((resolve) => setTimeout(resolve, 20));
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

  /** What metrics and STATUS= report, read at each report. */
  private reportedFacts(): ReportedFacts {
    return {
      workers: [...this.workers],
      desiredWorkers: this.desiredWorkers,
      health: this.liveness?.health.status ?? 'off',
      reloadFailure: this.reloadFailure,
      draining: this.drainTimer !== null,
    };
  }

  /** What hooks receive as `server`. */
  private hookView() {
    return { pid: process.pid, settings: this.settings, workers: [...this.workers].map((w) => w.pid) };
  }
}

function describeServed(served: ServedApp | null, app: string): string {
  return served?.interface === 'server' ? `server script ${app}` : `${served?.interface ?? 'unknown'} app ${app}`;
}
