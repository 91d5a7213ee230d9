// The package in an administrator's hands, under real systemd: an instance that
// fails on a config or app error fails once, its socket then refuses clients at
// once, and `systemctl start`/`restart` works as soon as it is fixed (no
// reset-failed); a port another unit holds is an err entry of the instance's own
// unit; control_socket_group is refused where the sandbox cannot grant it and
// works with the documented drop-in; `tsgunicorn status` lists every instance,
// running or not; and an upgrade lets a request in flight finish.
import { copyFileSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { diagnose, journalEntries, property, start, useMachine } from './fixture.js';
import { SUITES, waitFor, type Machine } from './harness.js';
import { attempt, request } from '../helpers/http.js';

// Ports of their own, away from the 8000 and 9001 of the other e2e files.
const PORT = 18261;
const TAKEN_PORT = 18262;
const url = `http://127.0.0.1:${PORT}/`;
const unit = 'tsgunicorn@adm.service';
const socket = 'tsgunicorn@adm.socket';
// Answers after ?delay= milliseconds, with the worker's pid; prints ?say= to stdout; ?write= writes beside itself.
const APP = `import { writeFileSync } from 'node:fs';
export const app = (req, res) => {
  const q = new URL(req.url, 'http://x').searchParams;
  if (q.has('say')) console.log(q.get('say'));
  if (q.has('write')) writeFileSync('/srv/adm/written.txt', 'x');
  setTimeout(() => res.end(\`adm \${process.pid}\`), Number(q.get('delay') ?? 0));
};
`;
// One line per key: a key written twice is refused (resolve.ts), so tests replace a line rather than add one.
const INI = `bind = 127.0.0.1:${PORT}\napp = /srv/adm/app.mjs\ngraceful_timeout = 120\naccesslog = -\n`;

const errMessages = async (m: Machine, u: string): Promise<string[]> =>
  (await journalEntries(m, u, '-p', 'err')).map((e) => `${e.PRIORITY} ${e.SYSLOG_IDENTIFIER}: ${e.MESSAGE}`);

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1', () => {
      c.destroy();
      resolve(true);
    });
    c.on('error', () => resolve(false));
  });
}

describe.each(SUITES)('%s: the package in an administrator’s hands', (suite) => {
  const machine = useMachine(suite);

  it('a config error under socket activation fails the instance once, then refuses clients; fixed, systemctl start serves', async () => {
    const m = machine();
    await m.writeFile('/srv/adm/app.mjs', APP);
    await m.writeFile('/etc/tsgunicorn/adm.ini', `${INI}workerz = 2\n`);
    await m.run(['systemctl', 'daemon-reload']);
    await m.run(['systemctl', 'start', socket]);

    // Clients keep coming: the first starts the service, which fails; then the port refuses.
    const reasons: string[] = [];
    await waitFor(
      async () => {
        const r = await attempt(url, { timeoutMs: 10_000 });
        reasons.push(r.ok ? 'ok' : r.reason);
        return reasons.length >= 5 && reasons.slice(-5).every((x) => x === 'ECONNREFUSED') ? true : undefined;
      },
      60_000,
      () => `[${suite}] the port did not start refusing: ${reasons.join(' ')}`,
      50,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose(m, unit)}\n${await diagnose(m, socket)}`);
    });
    console.log(`[${suite}] clients during a failed start: ${reasons.join(' ')}`);
    expect(reasons.filter((r) => r === 'ok')).toEqual([]);
    expect({
      service: await property(m, unit, 'ActiveState'),
      status: await property(m, unit, 'ExecMainStatus'),
      restarts: await property(m, unit, 'NRestarts'),
      socket: await property(m, socket, 'ActiveState'),
    }).toEqual({ service: 'failed', status: '2', restarts: '0', socket: 'inactive' });
    // Once: one start, one err entry.
    expect((await errMessages(m, unit)).filter((e) => e.includes('unknown setting "workerz"'))).toHaveLength(1);

    const said = await m.exec(['tsgunicorn', 'status', 'adm']);
    expect(said.code).toBe(1);
    expect(said.stderr).toMatch(
      /tsgunicorn@adm\.service failed at .*: exit 2 \(bad settings\); journalctl -u tsgunicorn@adm\.service -p err says why; once fixed: systemctl start tsgunicorn@adm\.service/,
    );

    await m.writeFile('/etc/tsgunicorn/adm.ini', INI);
    await start(m, unit);
    expect((await request(url)).body).toMatch(/^adm \d+$/);
  });

  it('an app that fails to load on restart fails once and stops its socket; fixed, systemctl restart serves', async () => {
    const m = machine();
    await m.writeFile('/srv/adm/app.mjs', "throw new Error('e2e: broken app');\n");
    expect((await m.systemctl('restart', unit)).code).not.toBe(0);
    await waitFor(
      async () => ((await property(m, socket, 'ActiveState')) === 'inactive' ? true : undefined),
      20_000,
      () => 'the socket unit did not stop',
    );
    expect(await property(m, unit, 'ExecMainStatus')).toBe('4');
    const refused = await attempt(url);
    expect(refused.ok ? 'answered' : refused.reason).toBe('ECONNREFUSED');
    await m.writeFile('/srv/adm/app.mjs', APP);
    const restart = await m.systemctl('restart', unit);
    expect(restart.code, `${restart.stderr}\n${await diagnose(m, unit)}`).toBe(0);
    expect((await request(url)).body).toMatch(/^adm \d+$/);
  });

  it("the app's console output is under the instance's name, its access entries carry the query, its EROFS errors the sandbox hint", async () => {
    const m = machine();
    const marker = `console-${suite}-${Date.now()}`;
    expect((await request(`${url}?say=${marker}`)).status).toBe(200);
    await waitFor(
      async () => ((await m.run(['journalctl', '-t', 'adm', '-o', 'cat'])).includes(marker) ? true : undefined),
      10_000,
      () => `journalctl -t adm does not show the app's ${marker}`,
    );
    await waitFor(
      async () => ((await journalEntries(m, unit, `HTTP_QUERY=say=${marker}`)).length ? true : undefined),
      10_000,
      () => `no access entry with HTTP_QUERY=say=${marker}`,
    );
    expect((await request(`${url}?write=1`)).status).toBe(500);
    await waitFor(
      async () =>
        (await errMessages(m, unit)).some(
          (e) => e.includes('EROFS') && e.includes('systemctl edit tsgunicorn@adm.service, add "[Service]" and "ReadWritePaths=/srv/adm"'),
        )
          ? true
          : undefined,
      10_000,
      () => "no err entry with the sandbox hint for the app's EROFS",
    );
  });

  it('a log file outside the log directory is refused at start, pointing into the log directory', async () => {
    const m = machine();
    // The tests so far may have started the unit as often as systemd's start limit allows in 10 s (5): not what this one is about.
    await m.run(['systemctl', 'reset-failed', unit]);
    await m.writeFile('/etc/tsgunicorn/adm.ini', INI.replace('accesslog = -', 'accesslog = /var/log/adm-access.log'));
    expect((await m.systemctl('restart', unit)).code).not.toBe(0);
    expect(await property(m, unit, 'ExecMainStatus')).toBe('2');
    const said = (await errMessages(m, unit)).filter((e) => e.includes('/var/log/adm-access.log cannot be written'));
    expect(said).toHaveLength(1);
    expect(said[0]).toContain('write the file there instead: /var/log/tsgunicorn/adm/adm-access.log');
    expect(said[0]).not.toContain('ReadWritePaths');
    await m.writeFile('/etc/tsgunicorn/adm.ini', INI.replace('accesslog = -', 'accesslog = /var/log/tsgunicorn/adm/access.log'));
    await start(m, unit);
    expect((await request(url)).status).toBe(200);
  });

  it('a port another unit holds is an err entry of tsgunicorn@NAME naming that unit', async () => {
    const m = machine();
    await m.run([
      'systemd-run',
      '--unit=squatter',
      '/usr/lib/tsgunicorn/bin/node',
      '-e',
      `require('node:net').createServer().listen(${TAKEN_PORT}, '127.0.0.1')`,
    ]);
    await waitFor(
      async () => ((await connects(TAKEN_PORT)) ? true : undefined),
      20_000,
      () => 'the squatter does not listen',
    );
    await m.writeFile('/srv/taken/app.mjs', APP);
    await m.writeFile('/etc/tsgunicorn/taken.ini', `bind = 127.0.0.1:${TAKEN_PORT}\n`);
    await m.run(['systemctl', 'daemon-reload']);
    expect((await m.systemctl('start', 'tsgunicorn@taken')).code).not.toBe(0);
    const entries = await journalEntries(m, 'tsgunicorn@taken.service', '-p', 'err');
    const said = entries.find((e) => e.MESSAGE?.includes(`127.0.0.1:${TAKEN_PORT} is in use by squatter.service`));
    expect(said, (await errMessages(m, 'tsgunicorn@taken.service')).join('\n')).toBeDefined();
    expect({ priority: said!.PRIORITY, id: said!.SYSLOG_IDENTIFIER }).toEqual({ priority: '3', id: 'taken' });
    expect(said!.MESSAGE).toContain('then: systemctl start tsgunicorn@taken.service');

    await m.run(['systemctl', 'stop', 'squatter']);
    await start(m, 'tsgunicorn@taken');
    expect((await request(`http://127.0.0.1:${TAKEN_PORT}/`)).body).toMatch(/^adm \d+$/);
    await m.run(['systemctl', 'stop', 'tsgunicorn@taken.socket']);
  });

  it('control_socket_group: an unknown group and one the sandbox cannot grant are exit 2; with the drop-in, members use status and reload', async () => {
    const m = machine();
    await m.writeFile('/etc/tsgunicorn/adm.ini', `${INI}control_socket_group = nosuchgroup\n`);
    expect((await m.systemctl('restart', unit)).code).not.toBe(0);
    expect(await property(m, unit, 'ExecMainStatus')).toBe('2');
    expect((await errMessages(m, unit)).some((e) => /control_socket_group: no group "nosuchgroup"/.test(e))).toBe(true);

    await m.run(['addgroup', '--system', 'ops']);
    await m.run(['adduser', '--system', '--ingroup', 'ops', 'alice']);
    await m.run(['adduser', '--system', 'bob']);
    await m.writeFile('/etc/tsgunicorn/adm.ini', `${INI}control_socket_group = ops\n`);
    expect((await m.systemctl('start', unit)).code).not.toBe(0);
    expect(await property(m, unit, 'ExecMainStatus')).toBe('2');
    expect(
      (await errMessages(m, unit)).some((e) =>
        e.includes(
          'systemctl edit tsgunicorn@adm.service, add "[Service]", "PrivateUsers=no", "SupplementaryGroups=ops" and "SystemCallFilter=@chown"',
        ),
      ),
    ).toBe(true);

    await m.writeFile(
      '/etc/systemd/system/tsgunicorn@adm.service.d/control-group.conf',
      '[Service]\nPrivateUsers=no\nSupplementaryGroups=ops\nSystemCallFilter=@chown\n',
    );
    await m.run(['systemctl', 'daemon-reload']);
    await start(m, unit);
    expect((await m.run(['stat', '-c', '%a %U %G', '/run/tsgunicorn/adm/control.sock'])).trim()).toBe('660 tsgunicorn ops');
    expect(await m.run(['runuser', '-u', 'alice', '--', 'tsgunicorn', 'status', 'adm'])).toMatch(/generation 1 · running/);
    expect(await m.run(['runuser', '-u', 'alice', '--', 'tsgunicorn', 'reload', '--wait', 'adm'])).toMatch(
      /Reloaded: generation 2 serving/,
    );
    // Not a member: refused by the socket's mode; the list says so and exits 1.
    const bob = await m.exec(['runuser', '-u', 'bob', '--', 'tsgunicorn', 'status']);
    expect(bob.code).toBe(1);
    expect(bob.stderr).toMatch(/adm: .*permission denied/);
  });

  it('`tsgunicorn status` lists running, stopped and failed instances, with restarts and the last failure', async () => {
    const m = machine();
    await m.writeFile('/srv/idle/app.mjs', APP);
    await m.writeFile('/etc/tsgunicorn/broken.ini', `app = /srv/adm/app.mjs\nbind = 127.0.0.1:18263\nworkers = lots\n`);
    await m.run(['systemctl', 'daemon-reload']);
    expect((await m.systemctl('start', 'tsgunicorn@broken')).code).not.toBe(0);
    const report = JSON.parse(await m.run(['tsgunicorn', 'status', '--json', 'adm'])) as { workers: { pid: number }[] };
    await m.run(['tsgunicorn', 'kill-worker', 'adm', String(report.workers[0]!.pid)]);

    let list = '';
    const rows = await waitFor(
      async () => {
        const r = await m.exec(['tsgunicorn', 'status']);
        list = `${r.stdout}${r.stderr}exit ${r.code}`;
        const byName = Object.fromEntries(
          r.stdout
            .trim()
            .split('\n')
            .slice(1)
            .map((l) => [l.split(/ +/)[0], l]),
        );
        return r.code === 0 && /^adm .* 1 +running +- *$/.test(byName.adm ?? '') ? byName : undefined;
      },
      20_000,
      () => `[${suite}] tsgunicorn status:\n${list}`,
    );
    expect(list.split('\n')[0]).toMatch(/^NAME +PID +UPTIME +WORKERS +REQ\/S +P99 +RSS +HEALTH +RESTARTS +STATE +LAST FAILURE$/);
    expect(Object.keys(rows).sort()).toEqual(['adm', 'broken', 'idle', 'taken']);
    expect(rows.idle).toMatch(/^idle( +-){7} +0 +stopped +-$/);
    expect(rows.taken).toMatch(/ stopped +-$/);
    expect(rows.broken).toMatch(
      / failed +failed at .*: exit 2 \(bad settings\); journalctl -u tsgunicorn@broken\.service -p err says why; once fixed: systemctl start tsgunicorn@broken\.service$/,
    );
  });

  it('an upgrade restarts running instances onto the new version, letting a request in flight finish', async () => {
    const m = machine();
    copyFileSync(inject('upgradeDeb'), path.join(m.root, 'root/upgrade.deb'));
    const masterBefore = await property(m, unit, 'MainPID');
    // In flight for the whole restart: the old master drains it (graceful_timeout) before it exits.
    const inFlight = request(`${url}?delay=20000`, { timeoutMs: 120_000 }).then((r) => ({ ...r, at: Date.now() }));
    await waitFor(
      async () => ((await m.run(['tsgunicorn', 'status', '--json', 'adm'])).includes('"inFlight": 1') ? true : undefined),
      10_000,
      () => 'the slow request is not in flight',
    );
    const upgrade = await m.exec(['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '/root/upgrade.deb'], {
      timeoutMs: 240_000,
    });
    const upgraded = Date.now();
    expect(upgrade.code, `${upgrade.stdout}\n${upgrade.stderr}`).toBe(0);
    const slow = await inFlight;
    expect(slow.status).toBe(200);
    // systemctl try-restart waited for that request: it finished before apt did.
    expect(slow.at).toBeLessThanOrEqual(upgraded);
    expect((await m.run(['tsgunicorn', '--version'])).trim()).toBe(inject('upgradeProgramVersion'));
    expect(await property(m, unit, 'MainPID')).not.toBe(masterBefore);
    // The package ships the dashboard.
    expect(await m.run(['cat', '/usr/share/tsgunicorn/grafana/tsgunicorn.json'])).toBe(
      readFileSync(path.resolve(import.meta.dirname, '../../packaging/grafana/tsgunicorn.json'), 'utf8'),
    );
    expect((await request(url)).body).toMatch(/^adm \d+$/);
  }, 300_000);
});
