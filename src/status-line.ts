// The one-line summary the master sends systemd as STATUS= (sd_notify(3)),
// shown by `systemctl status`.
import type { HealthStatus } from './health/health-check.js';
import type { RequestWindow } from './metrics/request-window.js';

/** A failed reload: when, why, and the generation that keeps serving. */
export interface ReloadFailure {
  at: string;
  reason: string;
  generation: number;
}

/** The recent requests, and what the master knows of its workers and health. */
export interface StatusFacts extends RequestWindow {
  ready: number;
  total: number;
  health: HealthStatus;
  /** The last reload failed: said first, until a reload succeeds. */
  reloadFailure?: ReloadFailure | null;
  /** A graceful stop's drain_delay is under way. */
  draining?: boolean;
}

// "1,240": by hand, since creating an Intl.NumberFormat loads ICU data, tens of
// milliseconds of the master's start.
export function grouped(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

// Whole numbers from 10 up, one decimal below, so small values keep their meaning.
export function short(n: number): string {
  return n >= 10 ? grouped(Math.round(n)) : String(Math.round(n * 10) / 10);
}

/**
 * e.g. "3/3 workers ready · 1,240 requests · 12 req/s · p99 8 ms · mean 3 ms · healthy",
 * after a failed reload "reload failed at 14:02:07: REASON; serving generation 1 · 3/3 workers ready · …"
 */
export function formatStatusLine(s: StatusFacts): string {
  const failure = s.reloadFailure
    ? [`reload failed at ${s.reloadFailure.at}: ${s.reloadFailure.reason}; serving generation ${s.reloadFailure.generation}`]
    : [];
  const parts = [
    ...failure,
    `${s.ready}/${s.total} ${s.total === 1 ? 'worker' : 'workers'} ready`,
    `${grouped(s.requests)} ${s.requests === 1 ? 'request' : 'requests'}`,
    `${short(s.ratePerSec)} req/s`,
  ];
  if (s.p99Ms !== undefined) parts.push(`p99 ${short(s.p99Ms)} ms`);
  if (s.meanMs !== undefined) parts.push(`mean ${short(s.meanMs)} ms`);
  if (s.health === 'healthy' || s.health === 'unhealthy') parts.push(s.health);
  if (s.health === 'unknown') parts.push('health unknown');
  if (s.draining) parts.push('draining');
  return parts.join(' · ');
}
