// The master's probe of the app through its real listening socket, with the
// health_check_* settings: initial delay, period, timeout, success and failure
// thresholds. A probe succeeds when a 2xx status arrives within the timeout.
// It records what the probes found; what that leads to is the master's decision.
import { EventEmitter } from 'node:events';
import type { RequestOptions } from 'node:http';
import { localHeader } from '../proxy-protocol/header.js';
import type { Settings } from '../settings/schema.js';

export type HealthSettings = Pick<
  Settings,
  | 'health_check_path'
  | 'health_check_initial_delay'
  | 'health_check_period'
  | 'health_check_timeout'
  | 'health_check_success_threshold'
  | 'health_check_failure_threshold'
> &
  Partial<Pick<Settings, 'proxy_protocol'>>;

/** Where the app listens. */
export type HealthAddress = { host: string; port: number } | { socketPath: string };
/** `tls` when that socket serves HTTPS. */
export type HealthTarget = HealthAddress & { tls?: boolean };

/** What the health check concluded so far; 'off' when no health check runs. */
export type HealthStatus = 'off' | 'unknown' | 'healthy' | 'unhealthy';

/**
 * The state starts 'unknown'; it turns 'unhealthy' once failure_threshold
 * consecutive probes have failed and 'healthy' once success_threshold
 * consecutive probes have succeeded. Emits 'probe' after each probe is recorded.
 * The settings and the target are read at every probe, so a reload's take effect
 * from the next one.
 */
export class HealthCheck extends EventEmitter<{ probe: [] }> {
  state: Exclude<HealthStatus, 'off'> = 'unknown';
  consecutiveFailures = 0;
  /** Why the last failed probe failed. */
  lastFailure: string | null = null;
  private consecutiveSuccesses = 0;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: AbortController | undefined;

  constructor(
    private readonly settings: () => HealthSettings,
    private readonly target: () => HealthTarget,
    private readonly log: { warn(msg: string): void },
  ) {
    super();
  }

  /** Probes every period after the initial delay; does nothing when health_check_path is unset. */
  start(): void {
    if (this.settings().health_check_path === null || this.timer !== undefined) return;
    this.schedule(this.settings().health_check_initial_delay * 1000);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.inFlight?.abort();
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => void this.tick(), delayMs).unref();
  }

  // The next probe is scheduled only after this one settled, so probes never overlap.
  private async tick(): Promise<void> {
    const settings = this.settings();
    // Never null here: Liveness stops the check as a reload unsets the path.
    if (settings.health_check_path === null) return;
    const started = performance.now();
    const abort = new AbortController();
    this.inFlight = abort;
    const failure = await this.probe(settings, settings.health_check_path, this.target(), abort.signal);
    this.inFlight = undefined;
    if (abort.signal.aborted) return; // stopped meanwhile
    this.record(settings, failure);
    this.emit('probe');
    this.schedule(Math.max(0, this.settings().health_check_period * 1000 - (performance.now() - started)));
  }

  private record(settings: HealthSettings, failure: string | undefined): void {
    if (failure === undefined) {
      this.consecutiveFailures = 0;
      this.consecutiveSuccesses++;
      if (this.consecutiveSuccesses >= settings.health_check_success_threshold) this.state = 'healthy';
      return;
    }
    this.consecutiveSuccesses = 0;
    this.consecutiveFailures++;
    this.lastFailure = failure;
    this.log.warn(`health check ${settings.health_check_path} failed (${this.consecutiveFailures} in a row): ${failure}`);
    if (this.consecutiveFailures >= settings.health_check_failure_threshold) this.state = 'unhealthy';
  }

  /** Resolves with undefined on success, or why the probe failed. */
  private probe(settings: HealthSettings, path: string, target: HealthTarget, signal: AbortSignal): Promise<string | undefined> {
    const timeoutMs = settings.health_check_timeout * 1000;
    const options: RequestOptions = {
      ...('socketPath' in target ? { socketPath: target.socketPath } : { host: target.host, port: target.port }),
      path,
      method: 'GET',
      agent: false,
      headers: { 'user-agent': 'tsgunicorn-health-check', connection: 'close' },
      signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
    };
    // Behind a PROXY protocol listener the probe says first that it stands for itself.
    const proxy = settings.proxy_protocol ?? 'off';
    if (proxy !== 'off') {
      // An agent would open its own connection instead (agent: false makes a fresh one).
      options.agent = undefined;
      options.createConnection = () => {
        const net = process.getBuiltinModule('node:net');
        const socket = 'socketPath' in target ? net.connect(target.socketPath) : net.connect(target.port, target.host);
        socket.write(localHeader(proxy));
        return target.tls ? process.getBuiltinModule('node:tls').connect({ socket, rejectUnauthorized: false }) : socket;
      };
    }
    // The master probes its own socket: the certificate need not name the address it connects to.
    // getBuiltinModule, not an import: see metrics/server.ts (undici's weight in
    // the master), and TLS setup is loaded only for a TLS target.
    const request = target.tls
      ? process.getBuiltinModule('node:https').request({ ...options, rejectUnauthorized: false })
      : process.getBuiltinModule('node:http').request(options);
    return new Promise((resolve) => {
      request.on('response', (res) => {
        res.resume(); // the status decides; the body is drained and dropped
        res.on('error', () => {}); // the deadline may cut the drain short after the verdict
        const ok = res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300;
        resolve(ok ? undefined : `status ${res.statusCode}`);
      });
      request.on('error', (err) =>
        resolve(err.name === 'AbortError' && !signal.aborted ? `no answer within ${timeoutMs} ms` : err.message),
      );
      request.end();
    });
  }
}
