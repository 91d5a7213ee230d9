// Worker lifecycle: timeouts, recycling, signals, reload and drain, with real
// processes and bounded loopback loads.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { load, request } from '../helpers/http.js';
import { requestInFlight } from '../helpers/in-flight.js';
import { FIXTURES, serversStoppedAfterEach, workerPids } from '../helpers/tsgunicorn.js';
import { sleep, until } from '../helpers/wait.js';

const start = serversStoppedAfterEach();
const fixture = (name: string) => path.join(FIXTURES, name);
const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'tsg-life-'));

describe('timeout', () => {
  it('kills a worker blocked past timeout, names the hung request, and the others keep serving', async () => {
    const server = await start(['-w', '2', '-t', '2', fixture('pid-app.mjs')]);
    const loadRun = load({ url: `${server.url}/pid`, clients: 4, durationMs: 5000, keepAlive: false });
    const hung = request(`${server.url}/busy?ms=60000`).catch((err: Error) => err);
    const sentAt = Date.now();
    const line = await server.waitFor(/WORKER TIMEOUT/, 10000);
    const lineAt = Date.now();
    const killedAfter = lineAt - sentAt;
    expect(line).toMatch(/\[CRITICAL\] WORKER TIMEOUT \(pid:\d+\): GET \/busy\?ms=60000 in flight for (\d+\.\d) s/);
    const age = Number(/for (\d+\.\d) s/.exec(line)![1]);
    expect(age).toBeGreaterThanOrEqual(2);
    expect(killedAfter).toBeLessThan(2000 + 2000);
    expect(await hung).toBeInstanceOf(Error);
    const result = await loadRun;
    // Only requests the hung worker accepted before it blocked may fail: at most
    // one per client, all sent before the busy request began there, which is
    // `age` before the line was logged (rounded to 0.1 s), not when it was sent.
    expect(result.failed, result.errors.join(', ')).toBeLessThanOrEqual(4);
    const busyBegan = lineAt - age * 1000 + 50;
    for (const failedAt of result.failedAt) expect(failedAt).toBeLessThanOrEqual(busyBegan);
    expect(result.ok).toBeGreaterThan(20);
    await until('replacement worker', async () => ((await workerPids(server.proc.pid!)).length === 2 ? true : undefined));
  });
});

describe('recycling', () => {
  for (const keepAlive of [true, false]) {
    it(`max_requests = 50: 2,000 requests from 20 clients (${keepAlive ? 'keep-alive' : 'Connection: close'}) without a failure`, async () => {
      const server = await start(['-w', '2', '--max-requests', '50', '--max-requests-jitter', '10', fixture('pid-app.mjs')]);
      const result = await load({ url: `${server.url}/pid`, clients: 20, total: 2000, keepAlive });
      expect(result.failed, result.errors.slice(0, 5).join(', ')).toBe(0);
      expect(result.ok).toBe(2000);
      // A worker keeps serving until its successor is ready, so lifetimes run past
      // 50 requests; the recycling shows as more pids than workers, and in the log.
      expect(result.bodies.size).toBeGreaterThan(3);
      expect(server.output().match(/reached max_requests: replacing it/g)!.length).toBeGreaterThanOrEqual(result.bodies.size - 2);
    });
  }

  it('max_worker_memory recycles a leaking worker without a failed request', async () => {
    const server = await start(['-w', '2', '--max-worker-memory', '120', fixture('leak-app.mjs')]);
    const result = await load({ url: `${server.url}/`, clients: 4, durationMs: 5000, keepAlive: true });
    expect(result.failed, result.errors.slice(0, 5).join(', ')).toBe(0);
    expect(result.bodies.size).toBeGreaterThan(2);
    expect(server.output()).toMatch(/uses \d+ MB, over max_worker_memory 120 MB: replacing it/);
  });
});

describe('reload (HUP)', () => {
  it("a response begun before a retiring worker drains is its connection's last: Connection: close, then a clean close", async () => {
    const server = await start(['-w', '1', fixture('reliability/app.mjs')]);
    const socket = net.connect(server.port, '127.0.0.1');
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    const ended = new Promise<string>((resolve) => {
      socket.on('end', () => resolve('end'));
      socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    await new Promise((resolve) => socket.once('connect', resolve));
    // Keep-alive by default (HTTP/1.1): the answer comes 8 s later, from a worker retired meanwhile
    // (a reload takes well under a second; the first assertion below says so if it did not).
    socket.write('GET /slowpid?ms=8000 HTTP/1.1\r\nHost: x\r\n\r\n');
    server.signal('SIGHUP');
    await server.waitFor(/Reloaded/);
    expect(received, 'the slow response came before the reload: nothing was in flight').toBe('');
    expect(await ended).toBe('end');
    expect(received).toMatch(/^HTTP\/1\.1 200 OK\r\n(?:[^\r]+\r\n)*Connection: close\r\n/i);
    socket.destroy();
  });

  it('serves the edited code after HUP, with zero failed requests from 20 clients over 10 s', async () => {
    const dir = tmp();
    const app = path.join(dir, 'app.mjs');
    writeFileSync(app, `export const app = (req, res) => res.end('v1');\n`);
    const server = await start(['-w', '2', app]);
    const loadRun = load({ url: `${server.url}/`, clients: 20, durationMs: 10000, keepAlive: true });
    await sleep(3000);
    writeFileSync(app, `export const app = (req, res) => res.end('v2');\n`);
    server.signal('SIGHUP');
    await server.waitFor(/Reloaded/);
    const result = await loadRun;
    expect(result.failed, result.errors.slice(0, 5).join(', ')).toBe(0);
    expect(result.bodies.get('v1')).toBeGreaterThan(0);
    expect(result.bodies.get('v2')).toBeGreaterThan(0);
    for (let i = 0; i < 20; i++) expect((await request(server.url)).body).toBe('v2');
  });

  it('a broken app on HUP leaves the old workers serving; HUP after the fix reloads', async () => {
    const dir = tmp();
    const app = path.join(dir, 'app.mjs');
    writeFileSync(app, `export const app = (req, res) => res.end('good');\n`);
    const server = await start(['-w', '2', app]);
    const before = await workerPids(server.proc.pid!);
    writeFileSync(app, `export const app = (req, res) => { res.end('bad' ;\n`);
    server.signal('SIGHUP');
    await server.waitFor(/Reload failed/);
    expect(server.output()).toMatch(/SyntaxError/);
    expect((await request(server.url)).body).toBe('good');
    expect((await workerPids(server.proc.pid!)).sort()).toEqual(before.sort());

    writeFileSync(app, `export const app = (req, res) => res.end('fixed');\n`);
    server.signal('SIGHUP');
    await server.waitFor(/Reloaded/);
    await until('fixed code served', async () => ((await request(server.url)).body === 'fixed' ? true : undefined));
  });
});

describe('signals', () => {
  it('TERM lets a 3 s request finish with 200, then the master exits 0 within graceful_timeout', async () => {
    const sock = path.join(tmp(), 'control.sock');
    const server = await start(['-w', '2', '--graceful-timeout', '10', '--control-socket', sock, fixture('pid-app.mjs')]);
    const slow = request(`${server.url}/slow?ms=3000`);
    await requestInFlight(sock);
    const termAt = Date.now();
    server.signal('SIGTERM');
    const reply = await slow;
    expect(reply).toMatchObject({ status: 200, body: 'slept 3000' });
    expect(await server.exited()).toBe(0);
    expect(Date.now() - termAt).toBeLessThan(10000);
  });

  it('INT stops at once, cutting in-flight requests', async () => {
    const sock = path.join(tmp(), 'control.sock');
    const server = await start(['-w', '1', '--control-socket', sock, fixture('pid-app.mjs')]);
    const slow = request(`${server.url}/slow?ms=5000`).catch((err: Error) => err);
    await requestInFlight(sock);
    const at = Date.now();
    server.signal('SIGINT');
    expect(await server.exited()).toBe(0);
    expect(Date.now() - at).toBeLessThan(3000);
    expect(await slow).toBeInstanceOf(Error);
  });

  it('TTIN adds a worker, TTOU removes one (never below 1)', async () => {
    const server = await start(['-w', '2', fixture('pid-app.mjs')]);
    const count = async () => (await workerPids(server.proc.pid!)).length;
    server.signal('SIGTTIN');
    await until('3 workers', async () => ((await count()) === 3 ? true : undefined));
    // Signals of one kind do not queue: pace them so each is handled.
    for (let i = 0; i < 4; i++) {
      server.signal('SIGTTOU');
      await sleep(200);
    }
    await until('1 worker', async () => ((await count()) === 1 ? true : undefined));
    await sleep(1500);
    expect(await count()).toBe(1);
    expect((await request(`${server.url}/pid`)).status).toBe(200);
  });

  it('USR1 reopens log files: after a rename, new lines go to a new file', async () => {
    const dir = tmp();
    const log = path.join(dir, 'access.log');
    const server = await start(['-w', '2', '--access-logfile', log, fixture('pid-app.mjs')]);
    await request(`${server.url}/before`);
    await until('first line', () => (existsSync(log) && readFileSync(log, 'utf8').includes('/before') ? true : undefined));
    renameSync(log, `${log}.1`);
    server.signal('SIGUSR1');
    await server.waitFor(/reopening log files/);
    await sleep(300);
    for (let i = 0; i < 4; i++) await request(`${server.url}/after`);
    await until('new file', () =>
      existsSync(log) &&
      readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => l.includes('/after')).length === 4
        ? true
        : undefined,
    );
    expect(readFileSync(`${log}.1`, 'utf8')).not.toContain('/after');
  });

  it('SIGKILL of the master: every worker is gone within 2 s', async () => {
    const server = await start(['-w', '3', fixture('pid-app.mjs')]);
    const workers = await workerPids(server.proc.pid!);
    expect(workers).toHaveLength(3);
    server.signal('SIGKILL');
    // An exited orphan may linger as a zombie until init reaps it: that is gone too.
    const alive = (pid: number) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
      } catch {
        return false;
      }
    };
    await until('workers gone', () => (workers.every((p) => !alive(p)) ? true : undefined), 2000);
  });
});

describe('hooks', () => {
  it('each hook fires at its point', async () => {
    const dir = tmp();
    const hooksLog = path.join(dir, 'hooks.log');
    const app = path.join(dir, 'app.mjs');
    copyFileSync(fixture('pid-app.mjs'), app);
    const server = await start(['-w', '2', '--hooks', fixture('hooks.mjs'), app], { env: { HOOKS_LOG: hooksLog } });
    const master = server.proc.pid!;
    const calls = () => readFileSync(hooksLog, 'utf8').trim().split('\n');
    await until('when_ready', () => (calls().some((l) => l.startsWith('when_ready')) ? true : undefined));
    const workers = await workerPids(master);
    server.signal('SIGHUP');
    await server.waitFor(/Reloaded/);
    await until('worker_exit x2', () => (calls().filter((l) => l.startsWith('worker_exit')).length === 2 ? true : undefined));
    await server.stop();
    const log = calls();
    expect(log[0]).toBe(`on_starting ${master} master=${master}`);
    const inits = log.filter((l) => l.startsWith('post_worker_init'));
    expect(inits).toHaveLength(4); // two at start, two after the reload
    for (const pid of workers) expect(inits).toContain(`post_worker_init ${pid} worker=${pid}`);
    expect(log).toContain(`when_ready ${master}`);
    expect(log).toContain(`on_reload ${master}`);
    for (const pid of workers) expect(log).toContain(`worker_exit ${master} worker=${pid}`);
    expect(log.at(-1)).toBe(`on_exit ${master}`);
  });

  it('a throwing hook is logged with its name and the server keeps serving', async () => {
    const server = await start(['-w', '1', '--hooks', fixture('throwing-hooks.mjs'), fixture('pid-app.mjs')]);
    await server.waitFor(/Hook when_ready failed/);
    expect(server.output()).toMatch(/hook exploded/);
    expect((await request(`${server.url}/pid`)).status).toBe(200);
  });
});

describe('reload setting (development)', () => {
  it('a changed source file is served without a signal', async () => {
    const dir = tmp();
    const app = path.join(dir, 'app.mjs');
    writeFileSync(app, `export const app = (req, res) => res.end('first');\n`);
    const server = await start(['-w', '1', '--reload', '--chdir', dir, 'app.mjs']);
    expect((await request(server.url)).body).toBe('first');
    writeFileSync(app, `export const app = (req, res) => res.end('second');\n`);
    await server.waitFor(/app\.mjs changed: reloading/);
    await until('new code', async () => ((await request(server.url)).body === 'second' ? true : undefined));
  });
});
