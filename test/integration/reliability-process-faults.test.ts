// Faults around the app: workers SIGKILLed under load, an access log that
// cannot be written (ENOSPC) or is removed while serving. SIGKILL of the master
// under systemd and a vanished journal socket belong to the systemd suite (test/e2e).
import { existsSync, mkdtempSync, readFileSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { load, request } from '../helpers/http.js';
import { FIXTURES, serversStoppedAfterEach, workerPids } from '../helpers/tsgunicorn.js';
import { sleep, until } from '../helpers/wait.js';

const start = serversStoppedAfterEach();
const APP = path.join(FIXTURES, 'reliability/app.mjs');
const count = (text: string, pattern: RegExp) => text.split('\n').filter((l) => pattern.test(l)).length;

describe('process faults', () => {
  it('5 worker SIGKILLs during 6 s of load: each worker is replaced, only connections cut by a kill fail', async () => {
    const workers = 3;
    const clients = 8;
    const server = await start(['-w', String(workers), APP]);
    const master = server.proc.pid!;
    const loadRun = load({ url: `${server.url}/pid`, clients, durationMs: 6000, keepAlive: false });
    const killed: number[] = [];
    const startedAt = Date.now();
    for (let k = 0; k < 5; k++) {
      await sleep(startedAt + 500 + k * 1000 - Date.now());
      // The victim is a worker that just answered, so it is serving, not booting.
      const victim = await until('a serving worker not killed yet', async () => {
        const pid = Number((await request(`${server.url}/pid`).catch(() => ({ body: '0' }))).body);
        return pid === 0 || killed.includes(pid) ? undefined : pid;
      });
      process.kill(victim, 'SIGKILL');
      killed.push(victim);
    }
    const result = await loadRun;
    // A kill can only cut the requests its worker held: at most one per client.
    expect(result.failed).toBeLessThanOrEqual(killed.length * clients);
    expect(result.errors.filter((e) => !/socket hang up|ECONNRESET|EPIPE/.test(e))).toEqual([]);
    expect(result.ok).toBeGreaterThan(300);
    for (const pid of killed) expect(server.output()).toContain(`Worker (pid:${pid}) was sent SIGKILL!`);
    // A replacement for each kill, and all of them serving.
    await until('3 workers, none of them killed', async () => {
      const now = await workerPids(master);
      return now.length === workers && !now.some((p) => killed.includes(p)) ? true : undefined;
    });
    expect(server.output().match(/Booting worker with pid/g)).toHaveLength(workers + killed.length);
    console.log(
      `reliability: faults injected 5 worker SIGKILLs under load; requests ${result.ok} ok, ${result.failed} cut by a kill; 5 replacements, 0 failures`,
    );
  });

  it('an access log on /dev/full (ENOSPC): every request is served and the fault is logged once', async () => {
    const server = await start(['-w', '1', '--access-logfile', '/dev/full', APP]);
    // Long enough for the logger's once-a-second retry to reopen the file a few times.
    const result = await load({ url: `${server.url}/pid`, clients: 4, durationMs: 3500, keepAlive: true });
    expect(result.failed, result.errors.slice(0, 5).join(', ')).toBe(0);
    expect(result.ok).toBeGreaterThan(100);
    expect((await request(`${server.url}/pid`)).status).toBe(200);
    const reports = count(server.output(), /Cannot write the access log \/dev\/full: ENOSPC/);
    expect(reports).toBe(1);
    expect(server.output()).not.toMatch(/exited|was sent|Uncaught/);
    console.log(
      `reliability: access log on /dev/full: requests ${result.ok} served, 0 failed, the fault logged ${reports} time, 0 failures`,
    );
  });

  it('an access log removed while serving is recreated, said once, and no request fails', async () => {
    const log = path.join(mkdtempSync(path.join(os.tmpdir(), 'tsg-removed-')), 'access.log');
    const server = await start(['-w', '1', '--access-logfile', log, APP]);
    const [worker] = await workerPids(server.proc.pid!);
    const loadRun = load({ url: `${server.url}/pid`, clients: 2, durationMs: 4000, keepAlive: true });
    await until('first lines', () => (existsSync(log) && readFileSync(log, 'utf8').length > 0 ? true : undefined));
    unlinkSync(log);
    // The worker writes the access log: once it has reopened, new lines land in the new file.
    await server.waitFor(new RegExp(`\\[${worker}\\] \\[INFO\\] The access log \\S+ was moved or removed; reopened it`), 5000);
    for (let i = 0; i < 5; i++) await request(`${server.url}/after-removal`);
    const result = await loadRun;
    expect(result.failed, result.errors.slice(0, 5).join(', ')).toBe(0);
    await until(
      'the new lines',
      () => (existsSync(log) && count(readFileSync(log, 'utf8'), /\/after-removal/) === 5 ? true : undefined),
      5000,
    );
    // Said once, by the process that writes the file.
    expect(count(server.output(), /was moved or removed/)).toBe(1);
    console.log(`reliability: access log removed while serving: recreated, said 1 time, requests ${result.ok + 5} served, 0 failures`);
  });
});
