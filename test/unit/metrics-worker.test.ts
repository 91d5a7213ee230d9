import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { SnapshotMetric } from '../../src/metrics/family.js';
import { createWorkerMetrics, DURATION_BUCKETS, PER_WORKER_METRICS, type MetricsSnapshot } from '../../src/metrics/worker-metrics.js';
import { builtModule, isPromClient, recordLoads } from '../helpers/loaded-modules.js';

const family = (snap: MetricsSnapshot, name: string) => {
  const metric = snap.metrics.find((m) => m.name === name);
  if (metric === undefined) throw new Error(`no ${name} in snapshot`);
  return metric;
};

const lagOf = (snap: MetricsSnapshot) => family(snap, 'tsgunicorn_worker_event_loop_lag_seconds').values[0]?.value;
// Past a few ticks of the lag sampler's 10 ms timer, which run first once due.
const nextTimers = () => new Promise((resolve) => setTimeout(resolve, 30));
const block = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

describe('worker metrics', () => {
  it('counts requests by method and status, folding unknown methods into "other"', async () => {
    const metrics = createWorkerMetrics();
    for (const [method, status] of [
      ['GET', 200],
      ['GET', 200],
      ['POST', 201],
      ['BREW', 418],
      ['get', 200],
    ] as const) {
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

  it('reports a loop blocked while a request is in flight as event-loop lag', async () => {
    const metrics = createWorkerMetrics();
    metrics.requestStarted();
    await nextTimers();
    block(200);
    await nextTimers();
    metrics.requestFinished('GET', 200, 0.2);
    expect(lagOf(await metrics.snapshot())).toBeGreaterThanOrEqual(0.2);
  });

  it('keeps no timer while idle: a loop blocked before any request reports no lag', async () => {
    const metrics = createWorkerMetrics();
    await nextTimers();
    block(200);
    await nextTimers();
    expect(lagOf(await metrics.snapshot())).toBe(0);
  });

  it('numbers snapshots and survives a JSON round trip (the IPC channel)', async () => {
    const metrics = createWorkerMetrics();
    const first = await metrics.snapshot();
    const second = await metrics.snapshot();
    expect(second.seq).toBeGreaterThan(first.seq);
    expect(JSON.parse(JSON.stringify(second))).toEqual(second);
  });

  it("writes the JSON prom-client's getMetricsAsJSON gives for the same requests (what the master sums)", async () => {
    const requests: Array<[string, number, number]> = [
      ['GET', 200, 0.003],
      ['GET', 200, 0.2],
      ['POST', 201, 0.15],
      ['BREW', 418, 12],
      ['get', 200, 0.005],
      ['DELETE', 404, 0.0051],
      ['GET', 500, 1],
      ['HEAD', 304, 2.5],
      ['OPTIONS', 204, 0],
      ['PATCH', 200, 10],
      ['PUT', 201, 0.49],
      ['GET', 200, 0.01],
    ];
    // The reference: the same families kept by prom-client itself.
    const registry = new Registry();
    const registers = [registry];
    const counter = new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests answered, by method and status code.',
      labelNames: ['method', 'status'],
      registers,
    });
    const histogram = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Time from receiving a request to finishing its response, in seconds.',
      buckets: DURATION_BUCKETS,
      registers,
    });
    const gauge = new Gauge({ name: 'http_requests_in_flight', help: 'HTTP requests being handled now.', registers });
    new Counter({
      name: 'tsgunicorn_max_connections_pauses_total',
      help: 'Times a worker held max_connections connections and stopped accepting (new ones wait for other workers or in the backlog).',
      registers,
    });
    new Counter({ name: 'tsgunicorn_worker_cpu_seconds_total', help: 'User and system CPU time spent, in seconds.', registers });
    new Gauge({ name: 'tsgunicorn_worker_resident_memory_bytes', help: 'Resident memory size, in bytes.', registers });
    new Gauge({
      name: 'tsgunicorn_worker_event_loop_lag_seconds',
      help: '99th percentile of event-loop delay while serving since the previous snapshot, in seconds (0 when idle throughout).',
      registers,
    });
    const metrics = createWorkerMetrics();
    const reference = async () => JSON.parse(JSON.stringify(await registry.getMetricsAsJSON())) as SnapshotMetric[];
    // Process series differ between the two by nature: compare their shape, not their value.
    const shape = (families: SnapshotMetric[]) =>
      JSON.stringify(
        families.map((f) =>
          PER_WORKER_METRICS.has(f.name) ? { ...f, values: f.values.map((v) => ({ ...v, value: typeof v.value })) } : f,
        ),
      );
    // Compared as text, so key order and number-versus-string `le` labels count too.
    expect(shape((await metrics.snapshot()).metrics)).toBe(shape(await reference()));
    for (const [method, status, seconds] of requests) {
      metrics.requestStarted();
      metrics.requestFinished(method, status, seconds);
      const known = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'].includes(method);
      counter.inc({ method: known ? method : 'other', status: String(status) });
      histogram.observe(seconds);
    }
    metrics.requestStarted();
    gauge.set(1);
    expect(shape((await metrics.snapshot()).metrics)).toBe(shape(await reference()));
  });

  it('does not load prom-client in the worker process', async () => {
    // The built worker metrics, then the master's exposition as a check that prom-client would be seen.
    const { worker, exposition } = await recordLoads(
      ['worker', 'exposition'],
      `
      const { createWorkerMetrics } = await import(${JSON.stringify(builtModule('metrics/worker-metrics.js'))});
      const metrics = createWorkerMetrics();
      metrics.requestStarted();
      metrics.requestFinished('GET', 200, 0.01);
      await metrics.snapshot();
      mark('worker');
      await import(${JSON.stringify(builtModule('metrics/exposition.js'))});
      mark('exposition');`,
    );
    expect(worker.loaded.some((u) => u.endsWith('/worker-metrics.js'))).toBe(true);
    expect(worker.loaded.filter(isPromClient)).toEqual([]);
    expect(exposition.loaded.some(isPromClient)).toBe(true);
  });
});
