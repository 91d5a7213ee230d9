// The master's probe of the app through its real listening socket, with the
// knobs of a Kubernetes probe (the health_check_* settings): initial delay,
// period, timeout, success and failure thresholds. A probe succeeds when a 2xx
// status arrives within the timeout.
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

/** Where the app listens; `tls` when that socket serves HTTPS. */
export type HealthTarget = ({ host: string; port: number } | { socketPath: string }) & { tls?: boolean };

export type HealthState = 'unknown' | 'healthy' | 'unhealthy';

/**
 * Emits 'unhealthy' (reason: string) when failure_threshold consecutive probes
 * have failed, and 'healthy' when success_threshold consecutive probes have
 * succeeded after that; each once per transition. The state starts 'unknown'
 * and turns 'healthy' without an event on the first successes.
 */
export class HealthCheck extends EventEmitter<{ healthy: []; unhealthy: [reason: string] }> {
  state: HealthState = 'unknown';
  consecutiveFailures = 0;
  private consecutiveSuccesses = 0;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: AbortController | undefined;

  constructor(
    private readonly settings: HealthSettings,
    private readonly target: HealthTarget,
    private readonly log: { warn(msg: string): void },
  ) {
    super();
  }

  /** Probes every period after the initial delay; does nothing when health_check_path is unset. */
  start(): void {
    if (this.settings.health_check_path === null || this.timer !== undefined) return;
    this.schedule(this.settings.health_check_initial_delay * 1000);
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
    const started = performance.now();
    const abort = new AbortController();
    this.inFlight = abort;
    const failure = await this.probe(abort.signal);
    this.inFlight = undefined;
    if (abort.signal.aborted) return; // stopped meanwhile
    this.record(failure);
    this.schedule(Math.max(0, this.settings.health_check_period * 1000 - (performance.now() - started)));
  }

  private record(failure: string | undefined): void {
    if (failure === undefined) {
      this.consecutiveFailures = 0;
      this.consecutiveSuccesses++;
      if (this.state !== 'healthy' && this.consecutiveSuccesses >= this.settings.health_check_success_threshold) {
        const was = this.state;
        this.state = 'healthy';
        if (was === 'unhealthy') this.emit('healthy');
      }
      return;
    }
    this.consecutiveSuccesses = 0;
    this.consecutiveFailures++;
    this.log.warn(`health check ${this.settings.health_check_path} failed (${this.consecutiveFailures} in a row): ${failure}`);
    if (this.state !== 'unhealthy' && this.consecutiveFailures >= this.settings.health_check_failure_threshold) {
      this.state = 'unhealthy';
      this.emit('unhealthy', failure);
    }
  }

  /** Resolves with undefined on success, or why the probe failed. */
  private probe(signal: AbortSignal): Promise<string | undefined> {
    const timeoutMs = this.settings.health_check_timeout * 1000;
    const options: RequestOptions = {
      ...('socketPath' in this.target ? { socketPath: this.target.socketPath } : { host: this.target.host, port: this.target.port }),
      path: this.settings.health_check_path!,
      method: 'GET',
      agent: false,
      headers: { 'user-agent': 'tsgunicorn-health-check', connection: 'close' },
      signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
    };
    // Behind a PROXY protocol listener the probe says first that it stands for itself.
    const proxy = this.settings.proxy_protocol ?? 'off';
    if (proxy !== 'off') {
      const target = this.target;
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
    const request = this.target.tls
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
