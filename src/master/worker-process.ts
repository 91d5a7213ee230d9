// The master's view of one worker process: how it was started, where it is in
// its life (WorkerLifecycle), what its heartbeats say, and the IPC requests the
// master makes of it.
import { spawn, type ChildProcess, type IOType } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import {
  FINAL_METRICS,
  FIRST_LISTEN_FD,
  HEARTBEAT_FD,
  type Heartbeat,
  type MasterMessage,
  type ServedApp,
  type WorkerMessage,
} from '../ipc.js';
import { LineSplitter } from '../line-splitter.js';
import type { RestartReason } from '../metrics/aggregator.js';
import type { Settings } from '../settings/schema.js';
import type { WorkerReport } from '../control/protocol.js';

const WORKER_ENTRY = fileURLToPath(new URL('../worker/entry.js', import.meta.url));

export interface SpawnOptions {
  settings: Settings;
  fds: number[];
  secure: boolean;
  env: NodeJS.ProcessEnv;
  generation: number;
  id: number;
}

/**
 * A worker's life as one state: booting → ready → retiring → exited, any of
 * them ending in exited. Only the transitions below change it.
 */
export type WorkerLifecycle =
  | { state: 'booting' }
  /** `replacing`: why a successor boots for it (recycling); it serves until that one is ready. */
  | { state: 'ready'; replacing: RestartReason | null }
  /** `reason`: why the master ended it; `wasReady`: it had served (one that exits without is a boot failure). */
  | { state: 'retiring'; reason: RestartReason; wasReady: boolean }
  | { state: 'exited'; reason: RestartReason | null; wasReady: boolean };

/**
 * Events: 'ready'; 'recycle' (reason); 'exit' (code, signal). 'exit' is always
 * the last, also for a worker that could not be spawned (`spawnError`).
 */
export class WorkerProcess extends EventEmitter {
  private readonly child: ChildProcess;
  readonly pid: number;
  readonly generation: number;
  readonly id: number;
  readonly startedAt = Date.now();
  private lifecycle: WorkerLifecycle = { state: 'booting' };
  lastBeat: Heartbeat | null = null;
  /** CPU use between the last two heartbeats, in % of one core; null before the second. */
  cpuPercent: number | null = null;
  /** When the worker's event loop was last seen advancing (master's clock). */
  lastProgressAt = Date.now();
  /** Why it could not load or serve the app, as it reported before exiting. */
  appError: string | null = null;
  /** How it serves the app, once ready. */
  served: ServedApp | null = null;
  /** The snapshot a draining worker sends as it leaves. */
  finalMetrics: unknown = null;
  /** Why the process could not be started (fork failed: EAGAIN under a pids limit, ENOMEM). */
  spawnError: Error | null = null;
  /** How it ended, once exited: its exit code, or null when a signal ended it. */
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  private lastBeatAt = 0;
  private nextMetricsId = 0;
  private readonly pendingMetrics = new Map<number, (data: unknown) => void>();

  constructor(options: SpawnOptions) {
    super();
    this.generation = options.generation;
    this.id = options.id;
    // The heartbeat pipe and the listening sockets sit at fixed stdio slots; stdio
    // 0-2 are shared so the app's own output lands where the master's does.
    const stdio: (IOType | 'ipc' | number)[] = ['inherit', 'inherit', 'inherit', 'ipc', 'pipe'];
    options.fds.forEach((fd, i) => (stdio[FIRST_LISTEN_FD + i] = fd));
    // --disable-sigusr1: a USR1 sent to every process of the unit (log rotation) is
    // ignored by workers instead of opening the inspector to any local user; the
    // master tells them to reopen their logs.
    this.child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', '--disable-sigusr1', WORKER_ENTRY], {
      stdio,
      env: options.env,
      cwd: options.settings.chdir ?? process.cwd(),
    });
    this.pid = this.child.pid ?? -1;
    if (this.child.pid === undefined) {
      // A fork that failed (EAGAIN under a pids limit) costs this worker, never the
      // master: Node reports it as an 'error' event, and no 'exit' follows.
      this.child.once('error', (err) => {
        this.spawnError = err;
        this.lifecycle = { state: 'exited', reason: null, wasReady: false };
        if (this.child.connected) this.child.disconnect();
        for (const stream of this.child.stdio) stream?.destroy();
        this.emit('exit', null, null);
      });
      return;
    }
    this.readHeartbeats();
    this.child.on('message', (message: WorkerMessage) => this.onMessage(message));
    this.child.once('exit', (code, signal) => {
      const finish = () => {
        this.exitCode = code;
        this.exitSignal = signal;
        this.lifecycle = { state: 'exited', reason: this.retireReason, wasReady: this.everReady };
        for (const resolve of this.pendingMetrics.values()) resolve(null);
        this.pendingMetrics.clear();
        this.emit('exit', code, signal);
      };
      // Messages sent just before exit (the final metrics) may still be in the IPC
      // pipe: the channel closes once they are read. A grandchild holding the
      // channel's fd open must not delay the replacement, hence the bound.
      if (!this.child.connected) return finish();
      const bound = setTimeout(finish, 200);
      this.child.once('disconnect', () => {
        clearTimeout(bound);
        finish();
      });
    });
    this.send({
      type: 'boot',
      settings: options.settings,
      sockets: options.fds.length,
      secure: options.secure,
      workerId: options.id,
      masterPid: process.pid,
    });
  }

  get state(): WorkerLifecycle['state'] {
    return this.lifecycle.state;
  }

  /** Why the master ended it, once it decided to. */
  get retireReason(): RestartReason | null {
    const l = this.lifecycle;
    return l.state === 'retiring' || l.state === 'exited' ? l.reason : null;
  }

  /** Why a successor is wanted for this serving worker (recycling), or null. */
  get replacing(): RestartReason | null {
    return this.lifecycle.state === 'ready' ? this.lifecycle.replacing : null;
  }

  /** It reached 'ready' at some point. */
  get everReady(): boolean {
    const l = this.lifecycle;
    return l.state === 'ready' || ((l.state === 'retiring' || l.state === 'exited') && l.wasReady);
  }

  /** Recycling: it serves until a successor is ready. */
  replaceFor(reason: RestartReason): void {
    if (this.lifecycle.state === 'ready') this.lifecycle = { state: 'ready', replacing: reason };
  }

  send(message: MasterMessage): void {
    if (this.child.connected) this.child.send(message, (err) => void err);
  }

  kill(signal: NodeJS.Signals): void {
    if (this.state !== 'exited' && this.spawnError === null) this.child.kill(signal);
  }

  /**
   * Graceful stop: finish in-flight requests, then exit. SIGTERM when the channel
   * is gone, or while booting: a worker listens for messages only once it serves.
   */
  stop(): void {
    if (this.state === 'exited') return;
    if (this.child.connected && this.state !== 'booting') this.send({ type: 'stop' });
    else this.kill('SIGTERM');
  }

  /** Stop accepting and leave once in-flight requests finish; one still booting has none, and ends at once. */
  retire(reason: RestartReason): void {
    if (this.state === 'exited' || this.state === 'retiring') return;
    if (this.state === 'booting') return this.terminate(reason);
    this.lifecycle = { state: 'retiring', reason, wasReady: true };
    this.send({ type: 'retire' });
  }

  /** End it at once (SIGKILL): hung past timeout, killed on request, or a failed generation's other workers. */
  terminate(reason: RestartReason): void {
    if (this.state === 'exited') return;
    this.lifecycle = { state: 'retiring', reason, wasReady: this.everReady };
    this.kill('SIGKILL');
  }

  /** What the control socket's status shows of this worker; `requests` comes from its metrics. */
  report(now: number, requests: number): WorkerReport {
    const oldest = this.lastBeat?.oldest ?? null;
    const space = oldest ? oldest.label.indexOf(' ') : -1;
    return {
      pid: this.pid,
      generation: this.generation,
      ageSec: (now - this.startedAt) / 1000,
      state: this.state === 'exited' ? 'retiring' : this.state,
      requests,
      inFlight: this.lastBeat?.inFlight ?? 0,
      oldest: oldest && {
        method: oldest.label.slice(0, space),
        path: oldest.label.slice(space + 1),
        ageSec: Math.max(0, now - oldest.startedAt) / 1000,
      },
      rssBytes: this.lastBeat?.rss ?? null,
      cpuPercent: this.cpuPercent === null ? null : Math.round(this.cpuPercent * 10) / 10,
    };
  }

  /** The worker's metrics snapshot, or null when it does not answer within `timeoutMs`. */
  requestMetrics(timeoutMs: number): Promise<unknown> {
    if (this.state === 'exited' || !this.child.connected) return Promise.resolve(null);
    const id = this.nextMetricsId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pendingMetrics.delete(id);
        resolve(null);
      }, timeoutMs);
      this.pendingMetrics.set(id, (data) => {
        clearTimeout(timer);
        this.pendingMetrics.delete(id);
        resolve(data);
      });
      this.send({ type: 'metrics', id });
    });
  }

  private onMessage(message: WorkerMessage): void {
    switch (message.type) {
      case 'ready':
        if (this.state === 'booting') this.lifecycle = { state: 'ready', replacing: null };
        this.served = message.app;
        this.lastProgressAt = Date.now();
        this.emit('ready');
        break;
      case 'app-error':
        this.appError = message.message;
        break;
      case 'recycle':
        this.emit('recycle', message.reason);
        break;
      case 'metrics':
        if (message.id === FINAL_METRICS) this.finalMetrics = message.data;
        else this.pendingMetrics.get(message.id)?.(message.data);
        break;
    }
  }

  private readHeartbeats(): void {
    const pipe = this.child.stdio[HEARTBEAT_FD] as NodeJS.ReadableStream | null;
    if (!pipe) return;
    const lines = new LineSplitter();
    pipe.setEncoding('utf8');
    pipe.on('data', (chunk: string) => {
      for (const line of lines.push(chunk)) {
        let beat: Heartbeat;
        try {
          beat = JSON.parse(line) as Heartbeat;
        } catch {
          continue;
        }
        const now = Date.now();
        if (!this.lastBeat || beat.tick !== this.lastBeat.tick) this.lastProgressAt = now;
        if (this.lastBeat && now > this.lastBeatAt) this.cpuPercent = (beat.cpu - this.lastBeat.cpu) / 10 / (now - this.lastBeatAt);
        this.lastBeat = beat;
        this.lastBeatAt = now;
        this.emit('heartbeat', beat);
      }
    });
    pipe.on('error', () => {});
  }
}
