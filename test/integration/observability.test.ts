// Metrics across workers and the health check, on a real server.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { load, request } from '../helpers/http.js';
import { metricSum as sum, scrapeMetrics } from '../helpers/metrics.js';
import { startNotifySocket } from '../helpers/notify-socket.js';
import { freePort } from '../helpers/ports.js';
import { FIXTURES, startServer, workerPids, type Running } from '../helpers/tsgunicorn.js';
import { selfSigned } from '../helpers/tls.js';
import { sleep, until } from '../helpers/wait.js';

const servers: Running[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
const fixture = (name: string) => path.join(FIXTURES, name);

async function startWithMetrics(args: string[], env: NodeJS.ProcessEnv = {}) {
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
  it('metrics_bind on port 0 logs the port it took, where the metrics are served', async () => {
    const server = await startServer(['-w', '1', '--metrics-bind', '127.0.0.1:0', fixture('pid-app.mjs')]);
    servers.push(server);
    const line = await server.waitFor(/Metrics at: http:\/\/127\.0\.0\.1:\d+\/metrics/);
    const port = /:(\d+)\/metrics/.exec(line)![1];
    expect(Number(port)).toBeGreaterThan(0);
    expect((await scrapeMetrics(Number(port))).status).toBe(200);
  });

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

  it('a reload (HUP) with changed health check settings applies them to the probe and to the watchdog alike', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-health-'));
    const flag = path.join(dir, 'fail');
    const ini = path.join(dir, 'app.ini');
    const notify = await startNotifySocket();
    try {
      const base = `bind = 127.0.0.1:${await freePort()}\nworkers = 1\nhealth_check_initial_delay = 0\n`;
      // /pid never fails; 10 failures would be needed, one a second.
      writeFileSync(ini, `${base}health_check_path = /pid\nhealth_check_period = 1\nhealth_check_failure_threshold = 10\n`);
      const server = await startServer(['-c', ini, fixture('health-app.mjs')], {
        // The watchdog wants a ping every 200 ms.
        env: { HEALTH_FAIL: flag, NOTIFY_SOCKET: notify.path, WATCHDOG_USEC: '400000' },
      });
      servers.push(server);
      const pings = () => notify.drain().filter((d) => d.data === 'WATCHDOG=1').length;
      await until('a watchdog ping', () => pings() > 0);

      writeFileSync(ini, `${base}health_check_path = /health\nhealth_check_period = 0.2\nhealth_check_failure_threshold = 2\n`);
      server.signal('SIGHUP');
      await server.waitFor(/Reloaded/);
      writeFileSync(flag, '');
      // The probe follows the new path, period and threshold…
      await server.waitFor(/Health check failed 2 times \(status 503\): replacing all workers/, 5000);
      // …and so does the watchdog's give-up: 2 more failures after the replacement.
      await server.waitFor(/stopping watchdog pings/, 5000);
      const beforeGivingUp = server.output().split('stopping watchdog pings')[0]!;
      expect([...beforeGivingUp.matchAll(/health check \/health failed \((\d+) in a row\)/g)].at(-1)?.[1]).toBe('4');
      expect(beforeGivingUp).not.toContain('health check /pid failed');
      await sleep(100); // a ping sent just before
      pings();
      await sleep(1000);
      expect(pings()).toBe(0);
    } finally {
      notify.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('probes with TLS once a reload (HUP) sets certfile', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-health-'));
    const ini = path.join(dir, 'app.ini');
    const tls = selfSigned();
    try {
      const base = `bind = 127.0.0.1:${await freePort()}\nworkers = 1\nhealth_check_path = /health\nhealth_check_initial_delay = 0\nhealth_check_period = 0.1\n`;
      writeFileSync(ini, base);
      const server = await startServer(['-c', ini, fixture('health-app.mjs')], { env: { HEALTH_FAIL: path.join(dir, 'absent') } });
      servers.push(server);
      writeFileSync(ini, `${base}certfile = ${tls.certfile}\nkeyfile = ${tls.keyfile}\n`);
      server.signal('SIGHUP');
      await server.waitFor(/Reloaded/);
      const reloaded = server.output().length;
      await sleep(1000); // ten probes of the HTTPS generation
      expect(server.output().slice(reloaded)).not.toMatch(/health check \/health failed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(path.dirname(tls.certfile), { recursive: true, force: true });
    }
  });

  it('a reload (HUP) that sets health_check_path starts the check, one that removes it stops it', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-health-'));
    const flag = path.join(dir, 'fail');
    const ini = path.join(dir, 'app.ini');
    try {
      const base = `bind = 127.0.0.1:${await freePort()}\nworkers = 1\nhealth_check_initial_delay = 0\nhealth_check_period = 0.1\n`;
      writeFileSync(ini, base);
      writeFileSync(flag, '');
      const server = await startServer(['-c', ini, fixture('health-app.mjs')], { env: { HEALTH_FAIL: flag } });
      servers.push(server);
      writeFileSync(ini, `${base}health_check_path = /health\nhealth_check_failure_threshold = 100\n`);
      server.signal('SIGHUP');
      await server.waitFor(/health check \/health failed \(1 in a row\)/);
      writeFileSync(ini, base);
      server.signal('SIGHUP');
      await until('the second reload', () => server.output().match(/Reloaded/g)?.length === 2);
      const reloaded = server.output().length;
      await sleep(500);
      expect(server.output().slice(reloaded)).not.toMatch(/health check \/health failed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
