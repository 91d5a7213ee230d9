// Messages between the master and a worker over the child-process IPC channel.
// None of these is sent per request: they are lifecycle events and scrapes.
import type { Settings } from './settings/schema.js';

/** Exit codes shared with Gunicorn, so wrappers and operators read them alike. */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  CONFIG: 2,
  WORKER_BOOT_ERROR: 3,
  APP_LOAD_ERROR: 4,
} as const;

/** The `id` of the unrequested metrics snapshot a worker sends just before it exits. */
export const FINAL_METRICS = -1;

/** The stdio slot of the heartbeat pipe, and of the first listening socket after it. */
export const HEARTBEAT_FD = 4;
export const FIRST_LISTEN_FD = 5;

export type MasterMessage =
  /** `masterPid`: the worker leaves at once if its parent is already someone else (the master died before it could watch). */
  | { type: 'boot'; settings: Settings; sockets: number; secure: boolean; workerId: number; masterPid: number }
  /** Stop accepting and leave once in-flight requests finish: recycling and reload. */
  | { type: 'retire' }
  /**
   * A graceful stop: as retire, but idle keep-alive connections close at once.
   * Sent rather than SIGTERM, whose handler an app may own (Next.js exits on it).
   */
  | { type: 'stop' }
  /** drain_delay began: answer health_check_path with 503, serve everything else. */
  | { type: 'drain' }
  | { type: 'metrics'; id: number }
  | { type: 'reopen-logs' };

export type WorkerMessage =
  | { type: 'ready'; app: ServedApp }
  | { type: 'app-error'; message: string }
  | { type: 'recycle'; reason: 'max_requests' }
  | { type: 'metrics'; id: number; data: unknown };

/** How a worker serves the app: from its export, or the server a server script started. */
export type ServedApp =
  | { interface: 'node' | 'fetch' }
  /** `asked`: the address the script gave listen(), which is never bound. */
  | { interface: 'server'; asked: string; secure: boolean };

/** The oldest request a worker has in flight: "GET /slow", and when it began (epoch ms). */
export interface OldestRequest {
  label: string;
  startedAt: number;
}

/**
 * One heartbeat line on the heartbeat pipe, as JSON.stringify writes it, from the
 * worker's watchdog thread (src/worker/watchdog/: native/watchdog, or its fallback).
 */
export interface Heartbeat {
  /** Advances while the worker's event loop runs; a stuck value means a blocked loop. */
  tick: number;
  inFlight: number;
  oldest: OldestRequest | null;
  rss: number;
  /** CPU time the process has used so far (user + system), in µs. */
  cpu: number;
}
