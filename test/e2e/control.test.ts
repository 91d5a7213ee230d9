// Operating instances through their control sockets under systemd: `tsgunicorn
// status` of one instance and of all, and a `systemctl reload` (ExecReload=
// tsgunicorn reload --wait) that fails on code that does not import, says why
// in `systemctl status`, keeps the old workers serving, and succeeds once fixed.
import { describe, expect, it } from 'vitest';
import { EXAMPLE_GREETING, diagnose, installExampleApp, start, unitPids, useMachine, waitServing } from './fixture.js';
import { SUITES, waitFor } from './harness.js';
import { load, request } from '../helpers/http.js';

const unit = 'tsgunicorn@myapp.service';

describe.each(SUITES)('%s: control socket', (suite) => {
  const machine = useMachine(suite);

  it('`tsgunicorn status myapp` shows the workers with live numbers; `tsgunicorn status` lists both instances', async () => {
    const m = machine();
    await installExampleApp(m);
    await installExampleApp(m, 'other');
    await m.writeFile('/etc/tsgunicorn/other.ini', 'bind = 127.0.0.1:9001\nworkers = 1\n');
    await m.run(['systemctl', 'daemon-reload']);
    await start(m, unit);
    await start(m, 'tsgunicorn@other.service');
    await waitServing(m, 'tsgunicorn@other.service', 'http://127.0.0.1:9001/', 10_000);
    for (let i = 0; i < 25; i++) expect((await request('http://127.0.0.1:8000/')).body).toContain(EXAMPLE_GREETING);

    const socket = await m.run(['stat', '-c', '%a %U', '/run/tsgunicorn/myapp/control.sock']);
    expect(socket.trim()).toBe('600 tsgunicorn');
    // Each row: pid, generation, age, ready, requests, in flight, oldest in flight, RSS, CPU (these two
    // from the worker's heartbeats: "-" until they arrive).
    const row = /^(\d+) +1 +.+? +ready +(\d+) +0 +- +(\d+) MB +[\d.]+%$/;
    let table = '';
    const rows = await waitFor(
      async () => {
        table = await m.run(['tsgunicorn', 'status', 'myapp']);
        const workers = table.split('\n').filter((line) => /^\d+ +1 +\S/.test(line));
        return workers.length > 0 && workers.every((line) => row.test(line)) ? workers : undefined;
      },
      10_000,
      () => `[${suite}] status rows with RSS and CPU:\n${table}`,
      500,
    );
    const [mainPid] = await unitPids(m, unit);
    expect(table).toMatch(new RegExp(`master pid ${mainPid} .* generation 1 · running`));
    expect(table).toMatch(/requests: 25 requests/);
    let served = 0;
    for (const line of rows) {
      const [, , requests, rss] = row.exec(line)!;
      served += Number(requests);
      expect(Number(rss)).toBeGreaterThan(20);
    }
    expect(served).toBe(25);

    const list = await m.run(['tsgunicorn', 'status']);
    const lines = list.trim().split('\n');
    expect(lines[0]).toMatch(/^NAME +PID +UPTIME +WORKERS/);
    expect(lines.slice(1).map((l) => l.split(/ +/)[0])).toEqual(['myapp', 'other']);
    expect(lines[2]).toMatch(/^other +\d+ +\S+( \S+)? +1\/1 /);
  });

  it('`systemctl reload` of code that fails to import exits non-zero, says why, fails no request; fixed, it succeeds', async () => {
    const m = machine();
    await installExampleApp(m);
    await start(m, unit);
    await waitServing(m, unit, 'http://127.0.0.1:8000/', 10_000);
    const running = load({ url: 'http://127.0.0.1:8000/', clients: 10, durationMs: 12_000, total: 10 * 5_000 });

    await m.run(['sh', '-c', 'echo \'import "./missing-module.js";\' >> /srv/myapp/app.ts']);
    const failed = await m.systemctl('reload', unit);
    const status = await m.systemctl('status', '--lines=20', '--no-pager', unit);
    expect(failed.code, await diagnose(m, unit)).not.toBe(0);
    expect(status.stdout).toMatch(
      /Status: "reload failed at \d\d:\d\d:\d\d: the app failed to load: Error \[ERR_MODULE_NOT_FOUND\]: Cannot find module '\/srv\/myapp\/missing-module\.js'.*; serving generation 1/,
    );
    expect(status.stdout).toContain('Active: active (running)');
    expect((await request('http://127.0.0.1:8000/')).body).toContain(EXAMPLE_GREETING);

    await m.run(['sed', '-i', '/missing-module/d', '/srv/myapp/app.ts']);
    const fixed = await m.systemctl('reload', unit);
    expect(fixed.code, `${fixed.stderr}\n${await diagnose(m, unit)}`).toBe(0);
    const after = await m.systemctl('status', '--lines=0', '--no-pager', unit);
    expect(after.stdout).not.toMatch(/reload failed/);
    expect(await m.run(['tsgunicorn', 'status', 'myapp'])).toMatch(/generation 2 · running/);

    const result = await running;
    console.log(`[${suite}] failed then fixed reload under load: ${JSON.stringify(result)}`);
    expect(result.failed, JSON.stringify(result.reasons)).toBe(0);
    expect(result.ok).toBeGreaterThan(0);
  });
});
