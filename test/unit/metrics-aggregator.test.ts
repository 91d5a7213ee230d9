import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { MetricsAggregator } from '../../src/metrics/aggregator.js';
import { createWorkerMetrics, type MetricsSnapshot, type WorkerMetrics } from '../../src/metrics/worker-metrics.js';
import { builtModule, isPromClient, recordLoads } from '../helpers/loaded-modules.js';

/** The value of one sample line in a text exposition, e.g. 'http_requests_total{method="GET",status="200"}'. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function serve(metrics: WorkerMetrics, method: string, status: number, seconds: number, times: number): void {
  for (let i = 0; i < times; i++) {
    metrics.requestStarted();
    metrics.requestFinished(method, status, seconds);
  }
}

const inProcess = (pid: number, metrics: WorkerMetrics) => ({ pid, request: () => metrics.snapshot() });
const GET_200 = 'http_requests_total{method="GET",status="200"}';

describe('MetricsAggregator', () => {
  it('sums the requests of three workers exactly, without a pid label', async () => {
    const workers = [createWorkerMetrics(), createWorkerMetrics(), createWorkerMetrics()];
    serve(workers[0]!, 'GET', 200, 0.01, 7);
    serve(workers[1]!, 'GET', 200, 0.3, 11);
    serve(workers[2]!, 'GET', 200, 0.01, 13);
    serve(workers[2]!, 'POST', 500, 0.01, 2);
    const aggregator = new MetricsAggregator();
    await aggregator.collect(workers.map((w, i) => inProcess(101 + i, w)));
    const text = await aggregator.render();
    expect(sample(text, GET_200)).toBe(31);
    expect(sample(text, 'http_requests_total{method="POST",status="500"}')).toBe(2);
    expect(sample(text, 'http_request_duration_seconds_bucket{le="0.2"}')).toBe(22);
    expect(sample(text, 'http_request_duration_seconds_bucket{le="+Inf"}')).toBe(33);
    expect(sample(text, 'http_request_duration_seconds_count')).toBe(33);
    expect(sample(text, 'http_requests_in_flight')).toBe(0);
    expect(text).not.toMatch(/http_requests_total\{[^}]*worker=/);
    expect(aggregator.requestTotals().requests).toBe(33);
    expect(aggregator.requestTotals().buckets.at(-1)).toEqual({ le: Infinity, count: 33 });
  });

  it('keeps per-process series apart with a worker label', async () => {
    const aggregator = new MetricsAggregator();
    await aggregator.collect([inProcess(201, createWorkerMetrics()), inProcess(202, createWorkerMetrics())]);
    const text = await aggregator.render();
    for (const pid of [201, 202]) {
      expect(sample(text, `tsgunicorn_worker_resident_memory_bytes{worker="${pid}"}`)).toBeGreaterThan(0);
      expect(sample(text, `tsgunicorn_worker_cpu_seconds_total{worker="${pid}"}`)).toBeGreaterThan(0);
      expect(sample(text, `tsgunicorn_worker_event_loop_lag_seconds{worker="${pid}"}`)).toBeGreaterThanOrEqual(0);
    }
  });

  it("uses a silent worker's last known values and counts the miss", async () => {
    const answering = createWorkerMetrics();
    const silent = createWorkerMetrics();
    serve(answering, 'GET', 200, 0.01, 3);
    serve(silent, 'GET', 200, 0.01, 4);
    const aggregator = new MetricsAggregator({ scrapeTimeoutMs: 100 });
    await aggregator.collect([inProcess(1, answering), inProcess(2, silent)]);
    serve(answering, 'GET', 200, 0.01, 1);
    serve(silent, 'GET', 200, 0.01, 100); // never reported: the worker stops answering
    await aggregator.collect([inProcess(1, answering), { pid: 2, request: () => new Promise<MetricsSnapshot>(() => {}) }]);
    const text = await aggregator.render();
    expect(sample(text, GET_200)).toBe(8);
    expect(sample(text, 'tsgunicorn_scrape_worker_misses_total')).toBe(1);
    expect(sample(text, 'tsgunicorn_worker_resident_memory_bytes{worker="2"}')).toBeGreaterThan(0);
  });

  it('keeps counters monotonic and gauges current when workers are retired and replaced', async () => {
    const aggregator = new MetricsAggregator();
    const first = createWorkerMetrics();
    const steady = createWorkerMetrics();
    serve(first, 'GET', 200, 0.01, 5);
    serve(steady, 'GET', 200, 0.01, 1);
    first.requestStarted(); // in flight when it dies
    await aggregator.collect([inProcess(1, first), inProcess(2, steady)]);
    const seen = [sample(await aggregator.render(), GET_200)];

    aggregator.retire(1);
    aggregator.retire(1); // a second exit report changes nothing
    let text = await aggregator.render();
    seen.push(sample(text, GET_200));
    expect(sample(text, 'http_requests_in_flight')).toBe(0);
    expect(sample(text, 'tsgunicorn_worker_resident_memory_bytes{worker="1"}')).toBeUndefined();

    const replacement = createWorkerMetrics();
    serve(replacement, 'GET', 200, 0.01, 2);
    await aggregator.collect([inProcess(3, replacement), inProcess(2, steady)]);
    text = await aggregator.render();
    seen.push(sample(text, GET_200));
    expect(sample(text, 'http_request_duration_seconds_count')).toBe(8);

    expect(seen).toEqual([6, 6, 8]);
  });

  it('ignores a reply that arrives after its worker was retired', async () => {
    const aggregator = new MetricsAggregator();
    const dying = createWorkerMetrics();
    serve(dying, 'GET', 200, 0.01, 5);
    let answer!: (snap: MetricsSnapshot) => void;
    const collecting = aggregator.collect([{ pid: 9, request: () => new Promise((resolve) => (answer = resolve)) }]);
    aggregator.retire(9);
    answer(await dying.snapshot());
    await collecting;
    const text = await aggregator.render();
    expect(sample(text, GET_200)).toBeUndefined();
    expect(sample(text, 'tsgunicorn_worker_resident_memory_bytes{worker="9"}')).toBeUndefined();
  });

  it('keeps nothing per retired worker once no collection runs (a reload a minute for months)', async () => {
    const aggregator = new MetricsAggregator();
    const metrics = createWorkerMetrics();
    for (let pid = 1000; pid < 11000; pid++) {
      let answer!: (snap: MetricsSnapshot) => void;
      const collecting = aggregator.collect([{ pid, request: () => new Promise((resolve) => (answer = resolve)) }]);
      aggregator.retire(pid);
      answer(await metrics.snapshot());
      await collecting;
    }
    // The master's only per-pid state, for replies racing a retirement: empty between collections.
    expect(aggregator['retiredWhileCollecting'].size).toBe(0);
    expect(aggregator['live'].size).toBe(0);
  });

  it('drops a snapshot older than the one it already has', async () => {
    const metrics = createWorkerMetrics();
    serve(metrics, 'GET', 200, 0.01, 1);
    const older = await metrics.snapshot();
    serve(metrics, 'GET', 200, 0.01, 1);
    const newer = await metrics.snapshot();
    const aggregator = new MetricsAggregator();
    aggregator.update(4, newer);
    aggregator.update(4, older);
    expect(sample(await aggregator.render(), GET_200)).toBe(2);
  });

  it("exposes the master's own metrics", async () => {
    const aggregator = new MetricsAggregator();
    aggregator.setWorkers({ configured: 4, alive: 4, ready: 3 });
    aggregator.countRestart('memory');
    aggregator.countRestart('memory');
    aggregator.setHealth('unhealthy');
    const text = await aggregator.render();
    expect(sample(text, 'tsgunicorn_workers{state="configured"}')).toBe(4);
    expect(sample(text, 'tsgunicorn_workers{state="ready"}')).toBe(3);
    expect(sample(text, 'tsgunicorn_worker_restarts_total{reason="memory"}')).toBe(2);
    expect(sample(text, 'tsgunicorn_worker_restarts_total{reason="crash"}')).toBe(0);
    expect(sample(text, 'tsgunicorn_health_status')).toBe(0);
    expect(sample(text, 'tsgunicorn_scrape_worker_misses_total')).toBe(0);
    expect(sample(text, 'tsgunicorn_machine_memory_bytes')).toBeGreaterThan(0);
    expect(sample(text, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);
  });

  it('loads prom-client only to render, not to keep request totals for the status line', async () => {
    // What the master does every 5 s without a scrape, then a first scrape.
    const { idle, totals, rendered } = await recordLoads(
      ['idle', 'totals', 'rendered'],
      `
      mark('idle');
      const { MetricsAggregator } = await import(${JSON.stringify(builtModule('metrics/aggregator.js'))});
      const { createWorkerMetrics } = await import(${JSON.stringify(builtModule('metrics/worker-metrics.js'))});
      const worker = createWorkerMetrics();
      for (let i = 0; i < 3; i++) { worker.requestStarted(); worker.requestFinished('GET', 200, 0.01); }
      const aggregator = new MetricsAggregator();
      aggregator.update(7, await worker.snapshot());
      aggregator.setWorkers({ configured: 1, alive: 1, ready: 1 });
      aggregator.setHealth('healthy');
      aggregator.countRestart('crash');
      await aggregator.collect([{ pid: 7, request: () => worker.snapshot() }]);
      mark('totals', aggregator.requestTotals().requests);
      mark('rendered', await aggregator.render());`,
    );
    expect(totals.data).toBe(3);
    expect(totals.loaded.some((url) => url.endsWith('/metrics/aggregator.js'))).toBe(true);
    expect(totals.loaded.filter(isPromClient)).toEqual([]);
    expect(sample(String(rendered.data), GET_200)).toBe(3);
    expect(sample(String(rendered.data), 'tsgunicorn_worker_restarts_total{reason="crash"}')).toBe(1);
    expect(rendered.loaded.some(isPromClient)).toBe(true);
    const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;
    console.info(
      `RSS of a node process: idle ${mb(idle.rss)}, aggregator keeping totals ${mb(totals.rss)}, after render ${mb(rendered.rss)}`,
    );
  });

  describe('with a real worker process answering over IPC', () => {
    let child: ChildProcess | undefined;
    afterEach(() => {
      child?.kill('SIGKILL');
      child = undefined;
    });

    // The child runs the built worker metrics and answers {type:'metrics-request',id} with {type:'metrics-reply',id,snapshot}.
    const childCode = `
      import { createWorkerMetrics } from ${JSON.stringify(new URL('../../dist/js/metrics/worker-metrics.js', import.meta.url).href)};
      const metrics = createWorkerMetrics();
      for (let i = 0; i < 42; i++) { metrics.requestStarted(); metrics.requestFinished('GET', 200, 0.003); }
      process.on('message', async (msg) => {
        if (msg.type === 'metrics-request') process.send({ type: 'metrics-reply', id: msg.id, snapshot: await metrics.snapshot() });
      });
      process.send({ type: 'ready' });`;

    it('answers a scrape within 1 s while that worker is stopped (SIGSTOP)', async () => {
      const worker = spawn(process.execPath, ['--input-type=module', '-e', childCode], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      child = worker;
      await once(worker, 'message');
      let nextId = 0;
      const request = () =>
        new Promise<MetricsSnapshot>((resolve) => {
          const id = ++nextId;
          const onReply = (msg: { type: string; id: number; snapshot: MetricsSnapshot }) => {
            if (msg.type !== 'metrics-reply' || msg.id !== id) return;
            worker.off('message', onReply);
            resolve(msg.snapshot);
          };
          worker.on('message', onReply);
          worker.send({ type: 'metrics-request', id });
        });
      const scraped = [{ pid: worker.pid!, request }];
      const aggregator = new MetricsAggregator();
      await aggregator.collect(scraped);
      expect(sample(await aggregator.render(), GET_200)).toBe(42);

      worker.kill('SIGSTOP');
      const started = performance.now();
      await aggregator.collect(scraped);
      const text = await aggregator.render();
      expect(performance.now() - started).toBeLessThan(1000);
      expect(sample(text, GET_200)).toBe(42);
      expect(sample(text, `tsgunicorn_worker_resident_memory_bytes{worker="${worker.pid}"}`)).toBeGreaterThan(0);
      expect(sample(text, 'tsgunicorn_scrape_worker_misses_total')).toBe(1);
      worker.kill('SIGCONT');
    });
  });
});
