// Metrics across workers and the health check, on a real server.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { load, request } from '../helpers/http.js';
import { metricSum as sum, scrapeMetrics } from '../helpers/metrics.js';
import { freePort } from '../helpers/ports.js';
import { FIXTURES, startServer, workerPids, type Running } from '../helpers/tsgunicorn.js';
import { sleep } from '../helpers/wait.js';

const servers: Running[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
const fixture = (name: string) => path.join(FIXTURES, name);

async function startWithMetrics(args: string[], env?: NodeJS.ProcessEnv) {
  const metricsPort = await freePort();
  const server = await startServer(['--metrics-bind', `127.0.0.1:${metricsPort}`, ...args], { env });
  servers.push(server);
  const scrape = async () => {
    const { status, text, ms } = await scrapeMetrics(metricsPort);
    expect(status).toBe(200);
    return { text, ms };
  };
  return { server, scrape };
}

describe('metrics', () => {
  it('http_requests_total summed over 3 workers equals the requests made, exactly', async () => {
    const { server, scrape } = await startWithMetrics(['-w', '3', fixture('pid-app.mjs')]);
    const result = await load({ url: `${server.url}/pid`, clients: 6, total: 600, keepAlive: false });
    expect(result.failed).toBe(0);
    expect(result.bodies.size).toBe(3);
    // A response is counted when it has been sent, a moment after the client has it.
    let total = 0;
    for (let i = 0; i < 20 && total !== 600; i++) {
      total = sum((await scrape()).text, 'http_requests_total');
      expect(total).toBeLessThanOrEqual(600);
      if (total !== 600) await sleep(100);
    }
    expect(total).toBe(600);
    const text = (await scrape()).text;
    expect(sum(text, 'http_request_duration_seconds_count')).toBe(600);
    expect(text).toMatch(/http_request_duration_seconds_bucket\{le="0\.2"/);
    expect(text).toMatch(/tsgunicorn_workers\{state="ready"\} 3/);
    expect(text.match(/tsgunicorn_worker_resident_memory_bytes\{worker="\d+"\}/g)).toHaveLength(3);
  });

  it('a SIGSTOPped worker does not fail or slow a scrape: < 1 s, with the others’ data', async () => {
    const { server, scrape } = await startWithMetrics(['-w', '3', '-t', '0', fixture('pid-app.mjs')]);
    await load({ url: `${server.url}/pid`, clients: 3, total: 90, keepAlive: false });
    await scrape(); // every worker's snapshot is known
    const [stopped] = await workerPids(server.proc.pid!);
    process.kill(stopped!, 'SIGSTOP');
    try {
      await load({ url: `${server.url}/pid`, clients: 3, total: 30, keepAlive: false });
      const { text, ms } = await scrape();
      expect(ms).toBeLessThan(1000);
      expect(sum(text, 'tsgunicorn_scrape_worker_misses_total')).toBeGreaterThanOrEqual(1);
      expect(sum(text, 'http_requests_total')).toBeGreaterThanOrEqual(90);
      expect(text).toContain(`worker="${stopped}"`);
    } finally {
      process.kill(stopped!, 'SIGCONT');
    }
  });

  it('replacing workers never makes a counter go backwards', async () => {
    const { server, scrape } = await startWithMetrics(['-w', '2', fixture('pid-app.mjs')]);
    await load({ url: `${server.url}/pid`, clients: 4, total: 200, keepAlive: false });
    await sleep(200);
    const before = sum((await scrape()).text, 'http_requests_total');
    expect(before).toBe(200);
    const [victim] = await workerPids(server.proc.pid!);
    process.kill(victim!, 'SIGKILL');
    for (let i = 0; i < 100; i++) {
      const pids = await workerPids(server.proc.pid!);
      if (pids.length === 2 && !pids.includes(victim!)) break;
      await sleep(50);
    }
    await request(`${server.url}/pid`);
    server.signal('SIGHUP'); // then a whole generation retires
    await server.waitFor(/Reloaded/);
    await load({ url: `${server.url}/pid`, clients: 2, total: 20, keepAlive: false });
    await sleep(200);
    const text = (await scrape()).text;
    expect(sum(text, 'http_requests_total')).toBe(221);
    expect(sum(text, 'tsgunicorn_worker_restarts_total', 'reason="crash"')).toBe(1);
    expect(sum(text, 'tsgunicorn_worker_restarts_total', 'reason="reload"')).toBe(2);
  });
});

describe('health check', () => {
  it('replaces the workers after 3 failed probes of /health', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-health-'));
    const flag = path.join(dir, 'fail');
    const { server, scrape } = await startWithMetrics(
      [
        '-w',
        '2',
        '--health-check-path',
        '/health',
        '--health-check-initial-delay',
        '0',
        '--health-check-period',
        '0.2',
        '--health-check-timeout',
        '0.5',
        fixture('health-app.mjs'),
      ],
      { HEALTH_FAIL: flag },
    );
    await sleep(600);
    expect(sum((await scrape()).text, 'tsgunicorn_health_status')).toBe(1);
    const before = await workerPids(server.proc.pid!);
    writeFileSync(flag, '');
    await server.waitFor(/Health check failed 3 times .*: replacing all workers/, 10000);
    rmSync(flag);
    await server.waitFor(/Reloaded/, 10000);
    // The old workers drain (idle keep-alive connections expire) and leave.
    for (let i = 0; i < 100 && (await workerPids(server.proc.pid!)).some((pid) => before.includes(pid)); i++) await sleep(100);
    const after = await workerPids(server.proc.pid!);
    expect(after).toHaveLength(2);
    expect(after.some((pid) => before.includes(pid))).toBe(false);
    expect(server.output().match(/health check \/health failed/g)!.length).toBeGreaterThanOrEqual(3);
    await server.waitFor(/Health check passes again/, 10000);
    expect(sum((await scrape()).text, 'tsgunicorn_worker_restarts_total', 'reason="health"')).toBe(2);
  });
});
