// The master as an arbiter: events that race (a crash, TTIN, HUP, TERM during a
// reload or the boot; a fork that fails; the master's own death) each lead to the
// right count of workers serving the right code, or to a clean exit. Every race is
// set up by the fixture holding workers in their import until the test releases
// them, and every wait is on an event (a log line, a datagram, a pid), not a sleep.
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StatusReport } from '../../src/control/protocol.js';
import { MAX_BOOTING } from '../../src/master/workforce.js';
import { request } from '../helpers/http.js';
import { startNotifySocket } from '../helpers/notify-socket.js';
import { createPidsCgroup, pidsCgroupRoot } from '../helpers/pids-cgroup.js';
import { FIXTURES, runCli, serversStoppedAfterEach, workerPids, type Running } from '../helpers/tsgunicorn.js';
import { until } from '../helpers/wait.js';

const start = serversStoppedAfterEach();
const APP = path.join(FIXTURES, 'races-app.mjs');

/** The fixture's steering directory, serving `version`. */
function raceDir(version: string): { dir: string; set: (file: string, content?: string) => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-race-'));
  chmodSync(dir, 0o755);
  const set = (file: string, content = '') => writeFileSync(path.join(dir, file), content);
  set('version', version);
  return { dir, set };
}

/** A server of `workers` workers mid-reload: HUP sent, the first v2 worker held in boot until `set('release')`. */
async function reloadHeld(workers: string) {
  const { dir, set } = raceDir('v1');
  const server = await start(['-w', workers, APP], { env: { RACE_DIR: dir } });
  set('version', 'v2');
  set('hold-v2', '1');
  const mark = server.output().length;
  server.signal('SIGHUP');
  await until('a v2 worker held', () => existsSync(path.join(dir, 'claim-v2-1')));
  return { server, set, mark };
}

/** Waits for the `count`th line matching `pattern` in the output after `from` (an offset); resolves with the matches. */
function linesAfter(server: Running, from: number, pattern: RegExp, count = 1, timeoutMs = 30000): Promise<RegExpMatchArray[]> {
  return until(
    `${count} × ${pattern}`,
    () => {
      const found = [...server.output().slice(from).matchAll(new RegExp(pattern.source, 'gm'))];
      return found.length >= count ? found : undefined;
    },
    timeoutMs,
  );
}

const bootedPids = (server: Running, from = 0) =>
  [
    ...server
      .output()
      .slice(from)
      .matchAll(/Booting worker with pid: (\d+)/g),
  ].map((m) => Number(m[1]));

/** Alive and not a zombie: an exited orphan may linger until init reaps it. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function socketPath(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-arbiter-'));
  return path.join(dir, 'control.sock');
}

async function status(sock: string): Promise<StatusReport> {
  const { code, stdout, stderr } = await runCli(['status', '--socket', sock, '--json']);
  expect(code, stderr).toBe(0);
  return JSON.parse(stdout) as StatusReport;
}

describe('reload races', () => {
  it('a new worker that crashes right after it is ready, while its sibling boots, is replaced: the reload ends with 2 workers', async () => {
    const { dir, set } = raceDir('v1');
    const server = await start(['-w', '2', '--log-level', 'debug', APP], { env: { RACE_DIR: dir } });
    set('version', 'v2');
    set('hold-v2', '2'); // the second v2 worker stays booting
    const mark = server.output().length;
    server.signal('SIGHUP');
    const readyPid = (await linesAfter(server, mark, /Worker \(pid:(\d+)\) ready in/))[0]![1]!;
    await until('the second v2 worker held', () => existsSync(path.join(dir, 'claim-v2-2')));
    process.kill(Number(readyPid), 'SIGKILL');
    await linesAfter(server, mark, new RegExp(`Worker \\(pid:${readyPid}\\) was sent SIGKILL`));
    set('release');
    await linesAfter(server, mark, /Reloaded: 2 new worker\(s\) serving/);
    const newPids = bootedPids(server, mark).filter((pid) => pid !== Number(readyPid));
    expect(newPids).toHaveLength(2); // the held one and the crashed one's replacement
    await until('only the 2 new workers left', async () => ((await workerPids(server.proc.pid!)).length === 2 ? true : undefined));
    expect((await workerPids(server.proc.pid!)).sort()).toEqual(newPids.sort());
    for (let i = 0; i < 6; i++) expect((await request(server.url)).body).toBe('v2');
  });

  it('TTIN during a reload is kept: the new generation has one more worker', async () => {
    const { server, set, mark } = await reloadHeld('1');
    server.signal('SIGTTIN');
    await linesAfter(server, mark, /Handling signal: ttin: 2 workers/);
    set('release');
    await linesAfter(server, mark, /Reloaded: 2 new worker\(s\) serving/);
    await until('2 workers', async () => ((await workerPids(server.proc.pid!)).length === 2 ? true : undefined));
    expect(bootedPids(server, mark)).toHaveLength(2);
  });

  it('HUP during a reload is queued, not dropped: the code on disk when it came is what serves', async () => {
    const { server, set, mark } = await reloadHeld('2');
    set('version', 'v3');
    server.signal('SIGHUP');
    await linesAfter(server, mark, /Reload requested while reloading: queued/);
    set('release');
    await linesAfter(server, mark, /Reloaded: 2 new worker\(s\) serving/, 2);
    await until('only the v3 workers left', async () => ((await workerPids(server.proc.pid!)).length === 2 ? true : undefined));
    for (let i = 0; i < 6; i++) expect((await request(server.url)).body).toBe('v3');
    expect(server.output()).not.toMatch(/ignored/);
  });
});

describe('stop', () => {
  it('TERM during boot wins: no READY=1 after STOPPING=1, no worker spawned after TERM, exit 0', async () => {
    const notify = await startNotifySocket();
    try {
      const { dir, set } = raceDir('v1');
      set('hold-v1', '1');
      set('ignore-term'); // the workers finish booting after TERM, and must still be stopped
      const server = await start(['-w', '2', '--graceful-timeout', '60', APP], {
        env: { RACE_DIR: dir, NOTIFY_SOCKET: notify.path },
        waitReady: false,
      });
      await until('both workers held', () => existsSync(path.join(dir, 'claim-v1-2')));
      server.signal('SIGTERM');
      await server.waitFor(/Graceful shutdown/);
      const termAt = server.output().length;
      set('release');
      expect(await server.exited()).toBe(0);
      const sent = notify.drain().map((d) => d.data);
      const stopping = sent.findIndex((d) => d.includes('STOPPING=1'));
      expect(stopping, sent.join(' | ')).toBeGreaterThanOrEqual(0);
      expect(sent.slice(stopping).filter((d) => /^READY=1/m.test(d))).toEqual([]);
      expect(sent.filter((d) => /^READY=1/m.test(d))).toEqual([]);
      const after = server.output().slice(termAt);
      expect(after).not.toMatch(/Booting worker/);
      expect(server.output()).not.toMatch(/\[ERROR\]|\[CRITICAL\]|Booted/);
      expect(bootedPids(server)).toHaveLength(2);
    } finally {
      notify.close();
    }
  });
});

describe('scale', () => {
  it('refuses anything but 1 to 1024 in plain digits, in the CLI and in the master; 1024 is taken and spawned in paced steps', async () => {
    const sock = socketPath();
    const server = await start(['-w', '1', '--control-socket', sock, path.join(FIXTURES, 'pid-app.mjs')]);
    await server.waitFor(/Control socket at: /);
    for (const bad of ['1025', '1e3', '0x10', '0', ' 4']) {
      const refused = await runCli(['scale', '--socket', sock, bad]);
      expect(refused.code, bad).toBe(2);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toBe(`tsgunicorn: error: scale: N must be a whole number from 1 to 1024, not '${bad}'\n`);
    }
    const negative = await runCli(['scale', '--socket', sock, '--', '-1']);
    expect(negative.code).toBe(2);
    expect(negative.stderr).toBe(`tsgunicorn: error: scale: N must be a whole number from 1 to 1024, not '-1'\n`);
    // The master keeps the bound whoever calls it.
    for (const workers of [1025, 1e3 + 0.5, -1, '16']) {
      const reply = await new Promise<string>((resolve, reject) => {
        const client = net.connect(sock, () => client.write(`${JSON.stringify({ v: 1, cmd: 'scale', workers })}\n`));
        client.setEncoding('utf8');
        client.once('data', (d) => {
          resolve(String(d));
          client.end();
        });
        client.on('error', reject);
      });
      expect(JSON.parse(reply)).toEqual({
        v: 1,
        ok: false,
        error: `scale: workers must be a whole number from 1 to 1024, not ${JSON.stringify(workers)}`,
      });
    }
    expect((await status(sock)).workersWanted).toBe(1);
    expect(server.output()).not.toMatch(/Scaling/);

    const accepted = await runCli(['scale', '--socket', sock, '1024']);
    expect(accepted).toMatchObject({ code: 0, stdout: 'Scaling to 1024 workers\n' });
    // Paced: never more than MAX_BOOTING booting at once, while the master answers and the count grows.
    let most = 0;
    await until(
      `more than ${2 * MAX_BOOTING} workers`,
      async () => {
        const report = await status(sock);
        most = Math.max(most, report.workers.filter((w) => w.state === 'booting').length);
        return report.workers.length > 2 * MAX_BOOTING ? true : undefined;
      },
      120000,
    );
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(MAX_BOOTING);
    expect((await status(sock)).workersWanted).toBe(1024);
    expect((await runCli(['scale', '--socket', sock, '1'])).code).toBe(0);
    await until('back to 1 worker', async () => ((await workerPids(server.proc.pid!)).length === 1 ? true : undefined), 60000);
    expect((await request(`${server.url}/pid`)).status).toBe(200);
  }, 240000);

  const cgroupRoot = pidsCgroupRoot();
  it.skipIf(typeof cgroupRoot !== 'string')(
    `a fork refused by a pids limit (EAGAIN) is logged once and retried with backoff; the master survives and recovers when the limit is raised${typeof cgroupRoot === 'string' ? '' : ` (skipped: ${cgroupRoot.unavailable})`}`,
    async () => {
      const sock = socketPath();
      const server = await start(['-w', '1', '--control-socket', sock, path.join(FIXTURES, 'pid-app.mjs')]);
      await server.waitFor(/Control socket at: /);
      const cgroup = createPidsCgroup(cgroupRoot as string, `tsg-arbiter-${process.pid}-${Date.now()}`);
      try {
        cgroup.add(server.proc.pid!);
        cgroup.setMax(cgroup.current()); // the master's threads, and not one more
        const mark = server.output().length;
        expect((await runCli(['scale', '--socket', sock, '3'])).code).toBe(0);
        await linesAfter(server, mark, /\[ERROR\] Cannot start a worker: spawn .*EAGAIN/);
        await until('three refused forks', () => (cgroup.refused() >= 3 ? true : undefined), 30000);
        expect(
          server
            .output()
            .slice(mark)
            .match(/Cannot start a worker/g),
        ).toHaveLength(1);
        const report = await status(sock);
        expect(report.workers).toHaveLength(1);
        expect((await request(`${server.url}/pid`)).status).toBe(200);
        cgroup.setMax('max');
        await until('3 workers', async () => ((await workerPids(server.proc.pid!)).length === 3 ? true : undefined), 60000);
        await linesAfter(server, mark, /Workers start again/);
        expect(server.proc.exitCode).toBeNull();
      } finally {
        await server.stop();
        cgroup.remove();
      }
    },
    120000,
  );
});

describe('no orphans: SIGKILL of the master', () => {
  for (const how of ['waiting on a timer', 'blocking its event loop'] as const) {
    it(`while its workers import the app (${how}): no process is left`, async () => {
      const { dir, set } = raceDir('v1');
      set('hold-v1', how === 'waiting on a timer' ? '1' : '1 busy');
      const server = await start(['-w', '2', APP], { env: { RACE_DIR: dir }, waitReady: false });
      // Two workers importing at once, one of them spinning, on a loaded machine: give them time.
      await until('both workers importing', () => existsSync(path.join(dir, 'claim-v1-2')), 60000);
      const workers = await workerPids(server.proc.pid!);
      expect(workers).toHaveLength(2);
      server.signal('SIGKILL');
      await server.exited();
      await until('workers gone', () => (workers.every((pid) => !alive(pid)) ? true : undefined));
    });
  }

  it('while its workers serve: no process is left', async () => {
    const { dir } = raceDir('v1');
    const server = await start(['-w', '2', APP], { env: { RACE_DIR: dir } });
    const workers = await workerPids(server.proc.pid!);
    expect(workers).toHaveLength(2);
    expect((await request(server.url)).body).toBe('v1');
    server.signal('SIGKILL');
    await server.exited();
    await until('workers gone', () => (workers.every((pid) => !alive(pid)) ? true : undefined));
  });
});
