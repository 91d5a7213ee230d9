import { describe, expect, it } from 'vitest';
import { createWorkerMetrics, type MetricsSnapshot } from '../../src/metrics/worker-metrics.js';

const family = (snap: MetricsSnapshot, name: string) => {
  const metric = snap.metrics.find((m) => m.name === name);
  if (metric === undefined) throw new Error(`no ${name} in snapshot`);
  return metric;
};

describe('worker metrics', () => {
  it('counts requests by method and status, folding unknown methods into "other"', async () => {
    const metrics = createWorkerMetrics();
    for (const [method, status] of [['GET', 200], ['GET', 200], ['POST', 201], ['BREW', 418], ['get', 200]] as const) {
      metrics.requestStarted();
      metrics.requestFinished(method, status, 0.01);
    }
    const values = family(await metrics.snapshot(), 'http_requests_total').values;
    expect(values).toEqual(
      expect.arrayContaining([
        { value: 2, labels: { method: 'GET', status: '200' } },
        { value: 1, labels: { method: 'POST', status: '201' } },
        { value: 1, labels: { method: 'other', status: '418' } },
        { value: 1, labels: { method: 'other', status: '200' } },
      ]),
    );
    expect(values).toHaveLength(4);
  });

  it('observes durations in buckets that include the 0.2 s objective', async () => {
    const metrics = createWorkerMetrics();
    for (const seconds of [0.15, 0.2, 0.3]) {
      metrics.requestStarted();
      metrics.requestFinished('GET', 200, seconds);
    }
    const values = family(await metrics.snapshot(), 'http_request_duration_seconds').values;
    const bucket = (le: number | string) =>
      values.find((v) => v.metricName === 'http_request_duration_seconds_bucket' && v.labels.le === le)?.value;
    expect(bucket(0.1)).toBe(0);
    expect(bucket(0.2)).toBe(2);
    expect(bucket(0.5)).toBe(3);
    expect(bucket('+Inf')).toBe(3);
    expect(values.find((v) => v.metricName === 'http_request_duration_seconds_count')?.value).toBe(3);
    expect(values.find((v) => v.metricName === 'http_request_duration_seconds_sum')?.value).toBeCloseTo(0.65);
  });

  it('tracks requests in flight', async () => {
    const metrics = createWorkerMetrics();
    metrics.requestStarted();
    metrics.requestStarted();
    metrics.requestFinished('GET', 200, 0.001);
    expect(family(await metrics.snapshot(), 'http_requests_in_flight').values[0]?.value).toBe(1);
  });

  it("reports this process's CPU time, resident memory and event-loop lag", async () => {
    const metrics = createWorkerMetrics();
    const snap = await metrics.snapshot();
    expect(family(snap, 'tsgunicorn_worker_cpu_seconds_total').values[0]?.value).toBeGreaterThan(0);
    const rss = family(snap, 'tsgunicorn_worker_resident_memory_bytes').values[0]?.value ?? 0;
    expect(rss).toBeGreaterThan(1024 * 1024);
    expect(rss).toBeLessThanOrEqual(process.memoryUsage.rss() * 2);
    expect(family(snap, 'tsgunicorn_worker_event_loop_lag_seconds').values[0]?.value).toBeGreaterThanOrEqual(0);
  });

  it('numbers snapshots and survives a JSON round trip (the IPC channel)', async () => {
    const metrics = createWorkerMetrics();
    const first = await metrics.snapshot();
    const second = await metrics.snapshot();
    expect(second.seq).toBeGreaterThan(first.seq);
    expect(JSON.parse(JSON.stringify(second))).toEqual(second);
  });
});
