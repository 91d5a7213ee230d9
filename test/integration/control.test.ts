// The control socket and the operator's subcommands, outside systemd
// (--control-socket PATH): what `tsgunicorn status --json` reports is checked
// against the real processes, and every command against what it changes.
import { chmodSync, mkdtempSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StatusReport } from '../../src/control/protocol.js';
import { load, request } from '../helpers/http.js';
import { FIXTURES, ROOT, runCli, serversStoppedAfterEach, workerPids, type Running } from '../helpers/tsgunicorn.js';
import { sleep, until } from '../helpers/wait.js';

const start = serversStoppedAfterEach();
const PID_APP = path.join(FIXTURES, 'pid-app.mjs');
const { version } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
const NOBODY = { uid: 65534, gid: 65534 };

/** A directory others may enter, so that only the socket's own mode decides who connects. */
function socketPath(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-control-'));
  chmodSync(dir, 0o755);
  return path.join(dir, 'control.sock');
}

async function serve(args: string[]): Promise<{ server: Running; sock: string }> {
  const sock = socketPath();
  const server = await start(['--control-socket', sock, ...args]);
  await server.waitFor(/Control socket at: /);
  return { server, sock };
}

async function status(sock: string): Promise<StatusReport> {
  const { code, stdout, stderr } = await runCli(['status', '--socket', sock, '--json']);
  expect(code, stderr).toBe(0);
  return JSON.parse(stdout) as StatusReport;
}

/** Sends raw bytes to the control socket; resolves with what came back before it closed. */
function rawControl(sock: string, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const client = net.connect(sock, () => client.write(payload));
    let received = '';
    client.setEncoding('utf8');
    client.on('data', (d) => (received += String(d)));
    client.on('close', () => resolve(received));
    client.on('error', reject);
  });
}

describe('tsgunicorn status', () => {
  it('--json reports the master, its listeners and each worker as they are: a held request in flight with its path and age', async () => {
    const { server, sock } = await serve(['-w', '2', PID_APP]);
    const served = new Map<string, number>();
    for (let i = 0; i < 6; i++) {
      const { body } = await request(`${server.url}/pid`);
      served.set(body, (served.get(body) ?? 0) + 1);
    }
    const sentAt = Date.now();
    const held = request(`${server.url}/slow?ms=30000`).catch((err: Error) => err);
    const seenAt = await until('the held request in flight', async () =>
      (await status(sock)).workers.some((w) => w.inFlight === 1) ? Date.now() : undefined,
    );
    await sleep(1000);
    const before = Date.now();
    const report = await status(sock);
    const after = Date.now();

    expect(report.pid).toBe(server.proc.pid);
    expect(report.version).toBe(version);
    expect(report.name).toBe(PID_APP);
    expect(report.generation).toBe(1);
    expect(report.phase).toBe('running');
    expect(report.workersWanted).toBe(2);
    expect(report.listeners).toEqual([`${server.url}`]);
    expect(report.health).toBe('off');
    expect(report.reloadFailure).toBeNull();
    expect(Object.values(report.restarts).every((n) => n === 0)).toBe(true);
    expect(report.uptimeSec).toBeGreaterThan((after - sentAt) / 1000);
    expect(report.requests.total).toBe(6);

    const pids = await workerPids(server.proc.pid!);
    expect(report.workers.map((w) => w.pid).sort()).toEqual(pids.sort());
    for (const worker of report.workers) {
      expect(worker).toMatchObject({ generation: 1, state: 'ready', requests: served.get(String(worker.pid)) ?? 0 });
      const vmRss = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${worker.pid}/status`, 'utf8'))![1]) * 1024;
      // The heartbeat's reading is at most a second old: the same order of magnitude as now.
      expect(worker.rssBytes).toBeGreaterThan(vmRss / 2);
      expect(worker.rssBytes).toBeLessThan(vmRss * 2);
      expect(worker.cpuPercent).toBeGreaterThanOrEqual(0);
    }
    const busy = report.workers.filter((w) => w.inFlight > 0);
    expect(busy).toHaveLength(1);
    const oldest = busy[0]!.oldest!;
    expect(oldest.method).toBe('GET');
    expect(oldest.path).toBe('/slow?ms=30000');
    // It began after it was sent and before it was first seen in flight.
    expect(oldest.ageSec).toBeGreaterThanOrEqual((before - seenAt) / 1000);
    expect(oldest.ageSec).toBeLessThanOrEqual((after - sentAt) / 1000);
    const idle = report.workers.find((w) => w.inFlight === 0)!;
    expect(idle.oldest).toBeNull();

    const table = await runCli(['status', '--socket', sock]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`master pid ${server.proc.pid} .* generation 1 · running`));
    expect(table.stdout).toMatch(/PID +GEN +AGE +STATE +REQUESTS +IN FLIGHT +OLDEST IN FLIGHT +RSS +CPU/);
    expect(table.stdout).toMatch(new RegExp(`${busy[0]!.pid} +1 .* ready +\\d+ +1 +GET /slow\\?ms=30000 \\(`));
    server.proc.kill('SIGINT');
    await held;
  });

  it('a worker killed from outside shows in restarts as a crash, its replacement in the table', async () => {
    const { server, sock } = await serve(['-w', '2', PID_APP]);
    const [victim, survivor] = await workerPids(server.proc.pid!);
    process.kill(victim!, 'SIGKILL');
    const report = await until('the replacement ready', async () => {
      const r = await status(sock);
      return r.workers.length === 2 && r.workers.every((w) => w.state === 'ready' && w.pid !== victim) ? r : undefined;
    });
    expect(report.restarts.crash).toBe(1);
    expect(report.workers.map((w) => w.pid)).toContain(survivor);
  });

  it('top prints the same table and ends on q, or when its input ends', async () => {
    const { server, sock } = await serve(['-w', '1', PID_APP]);
    const [worker] = await workerPids(server.proc.pid!);
    const { code, stdout } = await runCli(['top', '--socket', sock]);
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`master pid ${server.proc.pid}`));
    expect(stdout).toMatch(new RegExp(`\\n${worker} +1 `));
    expect(stdout).toContain('q: quit');
  });
});

describe('commands that change the server', () => {
  it('kill-worker kills that worker at once; it is replaced and counted as killed', async () => {
    const { server, sock } = await serve(['-w', '2', PID_APP]);
    const [victim] = await workerPids(server.proc.pid!);
    const killed = await runCli(['kill-worker', String(victim), '--socket', sock]);
    expect(killed).toMatchObject({ code: 0, stdout: `Killed worker ${victim}; the master replaces it\n` });
    const report = await until('replaced', async () => {
      const r = await status(sock);
      return r.workers.length === 2 && r.workers.every((w) => w.state === 'ready' && w.pid !== victim) ? r : undefined;
    });
    expect(report.restarts).toMatchObject({ killed: 1, crash: 0 });
    const unknown = await runCli(['kill-worker', '1', '--socket', sock]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^tsgunicorn: error: no worker with pid 1 \(workers: \d+, \d+\)\n$/);
  });

  it('scale sets the number of workers, up and down', async () => {
    const { server, sock } = await serve(['-w', '1', PID_APP]);
    const count = async () => (await workerPids(server.proc.pid!)).length;
    expect(await runCli(['scale', '3', '--socket', sock])).toMatchObject({ code: 0, stdout: 'Scaling to 3 workers\n' });
    await until('3 workers', async () => (await status(sock)).workers.filter((w) => w.state === 'ready').length === 3);
    expect((await status(sock)).workersWanted).toBe(3);
    expect(await runCli(['scale', '1', '--socket', sock])).toMatchObject({ code: 0 });
    await until('1 worker', async () => (await count()) === 1);
    const refused = await runCli(['scale', '0', '--socket', sock]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe("tsgunicorn: error: scale: N must be a whole number from 1 to 1024, not '0'\n");
  });

  it('reopen-logs reopens the log files: after a rename, new lines go to a new file', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-control-log-'));
    const log = path.join(dir, 'access.log');
    const { server, sock } = await serve(['-w', '1', '--access-logfile', log, PID_APP]);
    await request(`${server.url}/before`);
    await until('first line', () => readFileSync(log, 'utf8').includes('/before'));
    renameSync(log, `${log}.1`);
    expect(await runCli(['reopen-logs', '--socket', sock])).toMatchObject({ code: 0, stdout: 'Log files reopened\n' });
    await server.waitFor(/Reopening log files \(control socket\)/);
    await until('new file', async () => {
      await request(`${server.url}/after`);
      try {
        return readFileSync(log, 'utf8').includes('/after');
      } catch {
        return false;
      }
    });
    expect(readFileSync(`${log}.1`, 'utf8')).not.toContain('/after');
  });

  it('reload --wait returns once the new generation serves; of broken code it fails with the reason while the old workers serve; fixed, it succeeds', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-control-reload-'));
    const app = path.join(dir, 'app.mjs');
    const config = path.join(dir, 'server.ini');
    writeFileSync(app, `export const app = (req, res) => res.end('v1');\n`);
    writeFileSync(config, 'workers = 2\n');
    const { server, sock } = await serve(['-c', config, app]);
    const loadRun = load({ url: `${server.url}/`, clients: 10, durationMs: 8000, keepAlive: true });

    writeFileSync(app, `export const app = (req, res) => res.end('v2');\n`);
    const ok = await runCli(['reload', '--wait', '--socket', sock]);
    expect(ok).toMatchObject({ code: 0, stdout: 'Reloaded: generation 2 serving\n' });
    // Returned only once the new workers serve: no v1 answer after it.
    for (let i = 0; i < 10; i++) expect((await request(server.url)).body).toBe('v2');
    const reloaded = await status(sock);
    expect(reloaded.generation).toBe(2);
    expect(reloaded.workers.map((w) => w.generation)).toEqual([2, 2]);
    const serving = reloaded.workers.map((w) => w.pid).sort();

    // Broken code, and a new worker count that must not be taken up by the old generation.
    writeFileSync(app, `export const app = (req, res) => { res.end('bad' ;\n`);
    writeFileSync(config, 'workers = 3\n');
    const failed = await runCli(['reload', '--wait', '--socket', sock]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(
      /^tsgunicorn: error: the app failed to load: SyntaxError: missing \) after argument list at .*app\.mjs:1:\d+\n$/,
    );
    const after = await status(sock);
    expect(after.generation).toBe(2);
    expect(after.workersWanted).toBe(2);
    expect(after.workers.map((w) => w.pid).sort()).toEqual(serving);
    expect(after.reloadFailure?.reason).toMatch(/^the app failed to load: SyntaxError/);
    expect(after.reloadFailure?.at).toMatch(/^\d\d:\d\d:\d\d$/);
    expect((await request(server.url)).body).toBe('v2');
    // One entry for the failed reload, the stack once, and no retry that never happens.
    const log = server.output();
    expect(log.match(/Reload failed/g)).toHaveLength(1);
    expect(log.match(/at compileSourceTextModule/g)).toHaveLength(1);
    expect(log).not.toMatch(/retrying/);
    expect(await workerPids(server.proc.pid!)).toHaveLength(2);

    writeFileSync(app, `export const app = (req, res) => res.end('v3');\n`);
    const fixed = await runCli(['reload', '--wait', '--socket', sock]);
    expect(fixed).toMatchObject({ code: 0, stdout: 'Reloaded: generation 3 serving\n' });
    const final = await status(sock);
    expect(final.workersWanted).toBe(3);
    expect(final.workers).toHaveLength(3);
    expect(final.reloadFailure).toBeNull();
    const result = await loadRun;
    expect(result.failed, result.errors.slice(0, 5).join(', ')).toBe(0);
  });

  it('a reload where one new worker boots and another fails: the one that serves drains, no request fails', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-control-half-'));
    const app = path.join(dir, 'app.mjs');
    writeFileSync(app, `export const app = (req, res) => res.end('v1');\n`);
    const { server, sock } = await serve(['-w', '2', app]);
    const before = (await status(sock)).workers.map((w) => w.pid).sort();
    // The first new worker to import it claims the marker and serves; the second fails at import.
    const marker = path.join(dir, 'claimed');
    writeFileSync(
      app,
      `import { openSync } from 'node:fs';\nopenSync(${JSON.stringify(marker)}, 'wx');\nexport const app = (req, res) => setTimeout(() => res.end('v2'), 20);\n`,
    );
    const loadRun = load({ url: `${server.url}/`, clients: 10, durationMs: 4000, keepAlive: true });
    const failed = await runCli(['reload', '--wait', '--socket', sock]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/the app failed to load: Error: EEXIST/);
    const result = await loadRun;
    expect(result.failed, result.errors.slice(0, 5).join(', ')).toBe(0);
    expect((await status(sock)).workers.map((w) => w.pid).sort()).toEqual(before);
    expect(server.output().match(/Reload failed/g)).toHaveLength(1);
  });
});

describe('reload of a bad config', () => {
  it('reload --wait exits 1 naming the setting, and the server keeps its workers and settings', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-control-config-'));
    const config = path.join(dir, 'server.ini');
    writeFileSync(config, 'workers = 1\n');
    const { server, sock } = await serve(['-c', config, PID_APP]);
    const before = await status(sock);
    writeFileSync(config, 'workers = many\n');
    const failed = await runCli(['reload', '--wait', '--socket', sock]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^tsgunicorn: error: bad config: .*server\.ini:1.*workers/);
    const after = await status(sock);
    expect(after.workers.map((w) => w.pid)).toEqual(before.workers.map((w) => w.pid));
    expect(after.reloadFailure?.reason).toMatch(/^bad config: /);
    expect((await request(`${server.url}/pid`)).status).toBe(200);
  });
});

describe('the socket refuses what it should', () => {
  it('is a 0600 socket: another user is refused (EACCES)', async () => {
    const { sock } = await serve(['-w', '1', PID_APP]);
    expect(statSync(sock).mode & 0o777).toBe(0o600);
    const other = await runCli(['status', '--socket', sock], { user: NOBODY });
    expect(other.code).toBe(1);
    expect(other.stderr).toBe(
      `tsgunicorn: error: ${sock}: permission denied: run as the user the server runs as (or root), or set control_socket_group\n`,
    );
  });

  it('control_socket_group lets that group in (0660), and no one else', async () => {
    const { sock } = await serve(['-w', '1', '--control-socket-group', 'nogroup', PID_APP]);
    expect(statSync(sock).mode & 0o777).toBe(0o660);
    expect(statSync(sock).gid).toBe(NOBODY.gid);
    const member = await runCli(['status', '--socket', sock, '--json'], { user: NOBODY });
    expect(member.code, member.stderr).toBe(0);
    const outsider = await runCli(['status', '--socket', sock], { user: { uid: 65534, gid: 65533 } });
    expect(outsider.code).toBe(1);
    expect(outsider.stderr).toContain('permission denied');
  });

  it('malformed, oversized and unknown requests are answered with an error and cut off; the server keeps serving', async () => {
    const { server, sock } = await serve(['-w', '1', PID_APP]);
    const error = (reply: string) => (JSON.parse(reply.split('\n')[0]!) as { ok: boolean; error: string }).error;
    expect(error(await rawControl(sock, 'hello\n'))).toBe('malformed request: not JSON');
    expect(error(await rawControl(sock, '[1,2]\n'))).toBe('malformed request: not a JSON object');
    expect(error(await rawControl(sock, '{"v":2,"cmd":"status"}\n'))).toBe('unsupported protocol version 2 (this server speaks 1)');
    expect(error(await rawControl(sock, '{"v":1,"cmd":"shutdown"}\n'))).toBe('unknown command "shutdown"');
    // Without a newline: refused as soon as the line outgrows the limit.
    expect(error(await rawControl(sock, 'x'.repeat(100_000)))).toBe('request too large (the limit is 4096 bytes)');
    expect(error(await rawControl(sock, `{"v":1,"cmd":"status","pad":"${'x'.repeat(5000)}"}\n`))).toBe(
      'request too large (the limit is 4096 bytes)',
    );
    // A client that connects and says nothing does not hold up the others.
    const silent = net.connect(sock);
    await new Promise((resolve) => silent.once('connect', resolve));
    expect((await status(sock)).phase).toBe('running');
    silent.destroy();
    expect((await request(`${server.url}/pid`)).status).toBe(200);
    expect(server.proc.exitCode).toBeNull();
  });
});

describe('a control socket that cannot be opened costs the commands, never the server', () => {
  it('a path that holds a file is left alone; a socket another server answers on is not taken over', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-control-path-'));
    const file = path.join(dir, 'notes.txt');
    writeFileSync(file, 'keep me\n');
    const server = await start(['-w', '1', '--control-socket', file, PID_APP]);
    expect(await server.waitFor(/control socket/)).toContain(`[WARNING] control socket ${file}: ${file} exists and is not a socket;`);
    expect(readFileSync(file, 'utf8')).toBe('keep me\n');
    expect((await request(`${server.url}/pid`)).status).toBe(200);

    const { server: first, sock } = await serve(['-w', '1', PID_APP]);
    const second = await start(['-w', '1', '--control-socket', sock, PID_APP]);
    expect(await second.waitFor(/control socket/)).toContain(`${sock} is in use by another server`);
    expect((await status(sock)).pid).toBe(first.proc.pid);
  });
});

describe('subcommands never start a server', () => {
  it('an unknown word that is not a file gets "unknown command" with a did-you-mean, exit 2, and no worker', async () => {
    const typo = await runCli(['stauts']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/^tsgunicorn: error: unknown command 'stauts' \(did you mean status\?\)/);
    expect(typo.stderr + typo.stdout).not.toMatch(/Listening|Booting/);
    const reload = await runCli(['relaod']);
    expect(reload.stderr).toMatch(/unknown command 'relaod' \(did you mean reload\?\)/);
    const none = await runCli(['frobnicate']);
    expect(none).toMatchObject({ code: 2 });
    expect(none.stderr).toMatch(
      /^tsgunicorn: error: unknown command 'frobnicate'; to serve a file or directory of that name, give its path/,
    );
  });

  it('status of a server that is not there says so, exit 1', async () => {
    const missing = socketPath();
    const { code, stderr } = await runCli(['status', '--socket', missing]);
    expect(code).toBe(1);
    expect(stderr).toBe(`tsgunicorn: error: no control socket at ${missing}: is the server running, with control_socket on?\n`);
  });
});
