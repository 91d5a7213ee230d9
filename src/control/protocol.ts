// The control socket's protocol (version 1), shared by the master and the CLI:
// JSON lines over a Unix socket. The client writes one request per line and
// reads one reply line per request, in order. Documented in the README
// ("Operating a running server"); a change that breaks clients bumps VERSION.
import type { HealthStatus } from '../health/health-check.js';
import type { RestartReason } from '../metrics/aggregator.js';
import { MAX_WORKERS } from '../settings/kinds.js';

export const PROTOCOL_VERSION = 1;
/** A request line longer than this is refused and the connection closed. */
export const MAX_REQUEST_BYTES = 4096;

export type ControlRequest =
  | { v: 1; cmd: 'status' }
  | { v: 1; cmd: 'reload'; wait?: boolean }
  | { v: 1; cmd: 'scale'; workers: number }
  | { v: 1; cmd: 'kill-worker'; pid: number }
  | { v: 1; cmd: 'reopen-logs' };

export type ControlCommand = ControlRequest['cmd'];

export type ControlReply = { v: 1; ok: true; result: unknown } | { v: 1; ok: false; error: string };

export type WorkerStateName = 'booting' | 'ready' | 'retiring';

export interface WorkerReport {
  pid: number;
  generation: number;
  ageSec: number;
  state: WorkerStateName;
  /** Requests answered, as of the worker's last metrics snapshot. */
  requests: number;
  inFlight: number;
  oldest: { method: string; path: string; ageSec: number } | null;
  /** From its heartbeats: null until the first (RSS) or the second (CPU) arrived. */
  rssBytes: number | null;
  cpuPercent: number | null;
}

export interface StatusReport {
  pid: number;
  name: string;
  version: string;
  uptimeSec: number;
  generation: number;
  phase: 'booting' | 'running' | 'reloading' | 'stopping';
  workersWanted: number;
  listeners: string[];
  health: HealthStatus;
  /** Totals since start, and rate/latency over the window since the sample before (null: no earlier sample yet). */
  requests: { total: number; windowSec: number | null; ratePerSec: number | null; p50Ms: number | null; p99Ms: number | null };
  restarts: Record<RestartReason, number>;
  /** The last reload that failed, until one succeeds. */
  reloadFailure: { at: string; reason: string } | null;
  workers: WorkerReport[];
}

/** What `scale` takes: the bound of `workers` and TTIN. */
export const SCALE_FORM = `a whole number from 1 to ${MAX_WORKERS}`;

/** A worker count `scale` accepts. */
export const isScaleCount = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= MAX_WORKERS;

/** A refusal the client sees as the reply's error (thrown by the master's handlers). */
export class ControlError extends Error {}

export type ReloadOutcome = { ok: true; generation: number } | { ok: false; reason: string };

/** Checks one request line; returns the request or why it is refused. */
export function parseRequest(line: string): ControlRequest | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return 'malformed request: not JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'malformed request: not a JSON object';
  const request = value as Record<string, unknown>;
  if (request.v !== PROTOCOL_VERSION)
    return `unsupported protocol version ${JSON.stringify(request.v)} (this server speaks ${PROTOCOL_VERSION})`;
  switch (request.cmd) {
    case 'status':
    case 'reopen-logs':
      return { v: 1, cmd: request.cmd };
    case 'reload':
      if (request.wait !== undefined && typeof request.wait !== 'boolean') return 'reload: wait must be true or false';
      return { v: 1, cmd: 'reload', wait: request.wait === true };
    case 'scale':
      if (!isScaleCount(request.workers)) return `scale: workers must be ${SCALE_FORM}, not ${JSON.stringify(request.workers)}`;
      return { v: 1, cmd: 'scale', workers: request.workers };
    case 'kill-worker':
      if (!Number.isInteger(request.pid) || (request.pid as number) < 1) return 'kill-worker: pid must be a process id';
      return { v: 1, cmd: 'kill-worker', pid: request.pid as number };
    default:
      return `unknown command ${JSON.stringify(request.cmd)}`;
  }
}
