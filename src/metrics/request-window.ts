// Request rate and latency over the interval between two aggregated totals:
// counter and histogram-bucket deltas, the same arithmetic as Prometheus's
// rate() and histogram_quantile(), for the status line the master shows systemd.

export interface RequestTotals {
  /** All requests answered so far, summed over workers (live and retired). */
  requests: number;
  /** Sum of all request durations so far, in seconds. */
  durationSum: number;
  /** Cumulative histogram buckets in ascending `le` order; the last one is `le: Infinity`. */
  buckets: Array<{ le: number; count: number }>;
}

export interface RequestWindow {
  requests: number;
  ratePerSec: number;
  p50Ms?: number;
  p99Ms?: number;
  meanMs?: number;
}

export interface TotalsAt {
  totals: RequestTotals;
  atMs: number;
}

/** What happened between `previous` and `current`; only the running total when there is no earlier sample. */
export function requestWindow(previous: TotalsAt | undefined, current: TotalsAt): RequestWindow {
  const window: RequestWindow = { requests: current.totals.requests, ratePerSec: 0 };
  const elapsedSec = previous === undefined ? 0 : (current.atMs - previous.atMs) / 1000;
  if (previous === undefined || elapsedSec <= 0) return window;
  window.ratePerSec = Math.max(0, current.totals.requests - previous.totals.requests) / elapsedSec;
  const buckets = current.totals.buckets.map(({ le, count }) => ({
    le,
    count: count - (previous.totals.buckets.find((b) => b.le === le)?.count ?? 0),
  }));
  const observed = buckets.at(-1)?.count ?? 0;
  if (observed > 0) {
    window.p50Ms = histogramQuantile(0.5, buckets) * 1000;
    window.p99Ms = histogramQuantile(0.99, buckets) * 1000;
    window.meanMs = ((current.totals.durationSum - previous.totals.durationSum) / observed) * 1000;
  }
  return window;
}

/**
 * Prometheus's histogram_quantile: find the bucket holding the rank and
 * interpolate linearly inside it; a rank in the +Inf bucket yields the
 * highest finite bound. `buckets` must hold at least one observation.
 */
export function histogramQuantile(q: number, buckets: RequestTotals['buckets']): number {
  const rank = q * buckets[buckets.length - 1]!.count;
  const i = buckets.findIndex((b) => b.count >= rank);
  const bucket = buckets[i]!;
  const lower = i === 0 ? { le: 0, count: 0 } : buckets[i - 1]!;
  if (bucket.le === Infinity) return lower.le;
  return lower.le + ((bucket.le - lower.le) * (rank - lower.count)) / (bucket.count - lower.count);
}

/** Remembers the previous totals so the master can call update() every few seconds. */
export class RequestWindowTracker {
  private previous: TotalsAt | undefined;

  update(totals: RequestTotals, atMs: number): RequestWindow {
    const current = { totals, atMs };
    const window = requestWindow(this.previous, current);
    this.previous = current;
    return window;
  }
}
