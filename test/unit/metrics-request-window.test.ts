import { describe, expect, it } from 'vitest';
import { histogramQuantile, requestWindow, RequestWindowTracker, type RequestTotals } from '../../src/metrics/request-window.js';

const LE = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, Infinity];

/** Totals for observations given as how many fell into each bucket (not cumulative). */
function totals(perBucket: number[], durationSum: number): RequestTotals {
  let running = 0;
  const buckets = LE.map((le, i) => ({ le, count: (running += perBucket[i] ?? 0) }));
  return { requests: running, durationSum, buckets };
}

describe('histogramQuantile', () => {
  it('interpolates inside the bucket that holds the rank, as Prometheus does', () => {
    // 100 observations: 50 in (0, 0.005], 50 in (0.005, 0.01]; rank 99 is 49/50 into the second bucket.
    expect(histogramQuantile(0.99, totals([50, 50], 0).buckets)).toBeCloseTo(0.005 + 0.005 * (49 / 50));
    expect(histogramQuantile(0.5, totals([50, 50], 0).buckets)).toBeCloseTo(0.005);
  });

  it('answers with the highest finite bound when the rank lies in +Inf', () => {
    const perBucket = Array<number>(11).fill(0).concat([10]);
    expect(histogramQuantile(0.99, totals(perBucket, 0).buckets)).toBe(10);
  });
});

describe('requestWindow', () => {
  it('reports only the running total without an earlier sample', () => {
    expect(requestWindow(undefined, { totals: totals([3], 0.01), atMs: 1000 })).toEqual({ requests: 3, ratePerSec: 0 });
  });

  it('computes rate, p99 and mean from the deltas between two samples', () => {
    const before = { totals: totals([100], 0.2), atMs: 10_000 };
    // 100 more requests over 5 s, all in (0.1, 0.2], 15 s of duration between them.
    const after = { totals: totals([100, 0, 0, 0, 0, 100], 15.2), atMs: 15_000 };
    const window = requestWindow(before, after);
    expect(window.requests).toBe(200);
    expect(window.ratePerSec).toBe(20);
    expect(window.p99Ms).toBeCloseTo(199);
    expect(window.meanMs).toBeCloseTo(150);
  });

  it('leaves latency out when nothing was served in the interval', () => {
    const same = totals([7], 0.02);
    expect(requestWindow({ totals: same, atMs: 0 }, { totals: same, atMs: 2000 })).toEqual({ requests: 7, ratePerSec: 0 });
  });
});

describe('RequestWindowTracker', () => {
  it('measures each update against the previous one', () => {
    const tracker = new RequestWindowTracker();
    expect(tracker.update(totals([10], 0.01), 0).ratePerSec).toBe(0);
    expect(tracker.update(totals([30], 0.03), 2000).ratePerSec).toBe(10);
    expect(tracker.update(totals([33], 0.033), 5000).ratePerSec).toBe(1);
  });
});
