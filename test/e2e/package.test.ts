// The .deb's life on a fresh machine, as an admin lives it, in each suite:
// `apt install` of the local file (offline), the documented used-by path, an
// upgrade while an instance serves, then remove and purge. The tests run in
// order on one container, each from where the previous one left it.
import { copyFileSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { EXAMPLE_GREETING, aptGet, diagnose, installExampleApp, listFiles, property, useMachine } from './fixture.js';
import { SUITES, sleep, waitFor, type ExecResult } from './harness.js';
import { attempt, load, request } from '../helpers/http.js';

const repo = path.resolve(import.meta.dirname, '../..');
const { version } = JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string };
const exampleApp = readFileSync(path.join(repo, 'packaging/examples/hello/app.ts'), 'utf8');

const unit = 'tsgunicorn@myapp.service';
const url = 'http://127.0.0.1:8000/';
const CONFIG = `; written by the e2e package test
app = /srv/myapp/app.ts
accesslog = -
`;
// The admin's own files: purge must keep them (and the directory holding the config).
const ADMIN_PATHS = ['/etc/tsgunicorn', '/etc/tsgunicorn/myapp.ini', '/srv/myapp', '/srv/myapp/app.ts'];

describe.each(SUITES)('%s: the Debian package', (suite) => {
  const machine = useMachine(suite, { withDeb: false });
  let filesBefore: string[] = [];

  it('apt install ./tsgunicorn.deb works offline, its postinst shows the minimums, and the CLI runs', async () => {
    const m = machine();
    const deb = builtDeb('deb', 'debError');
    copyFileSync(deb, path.join(m.root, 'root/tsgunicorn.deb'));
    filesBefore = await listFiles(m);

    const started = Date.now();
    const install = await aptGet(m, 'install', '/root/tsgunicorn.deb');
    const took = Date.now() - started;
    console.log(`[${suite}] tsgunicorn.deb: ${(statSync(deb).size / 1e6).toFixed(1)} MB, apt install took ${(took / 1000).toFixed(1)} s`);
    expect(install.code, output(install)).toBe(0);
    // Nothing but the package itself: every dependency is already on the machine.
    expect(install.stdout).toMatch(/^0 upgraded, 1 newly installed, 0 to remove/m);
    expect(install.stdout).toMatch(/^Need to get 0 B\//m);
    expect(
      doctorRows(install.stdout).map((r) => r.check),
      output(install),
    ).toEqual(['CPU cores', 'Memory', 'Disk (/var/lib)', 'OS']);
    // After the hardware table, the three steps to a served app.
    // (apt runs dpkg on a terminal: its lines end in \r\n.)
    const printed = install.stdout.replaceAll('\r\n', '\n');
    const steps = printed.slice(printed.indexOf('CHECK'));
    expect(steps).toMatch(
      /\ntsgunicorn: next steps, for an app called NAME:\n  1\. Put the app in \/srv\/NAME .*\n.*\n  2\. sudo systemctl enable --now tsgunicorn@NAME .*\n  3\. curl localhost:8000\/; journalctl -u tsgunicorn@NAME -p err/,
    );

    expect((await m.run(['tsgunicorn', '--version'])).trim()).toBe(version);
    const doctor = await m.exec(['tsgunicorn', 'doctor']);
    const rows = doctorRows(doctor.stdout);
    expect(
      rows.map((r) => r.check),
      output(doctor),
    ).toEqual(['CPU cores', 'Memory', 'Disk (/var/lib)', 'OS']);
    // The container has the host's hardware: whichever the verdict, the exit code must match it.
    const unmet = rows.filter((r) => r.status === 'unmet').map((r) => r.check);
    console.log(`[${suite}] tsgunicorn doctor exited ${doctor.code}; unmet: ${unmet.join(', ') || 'none'}`);
    expect(doctor.code, output(doctor)).toBe(unmet.length ? 1 : 0);
  }, 240_000);

  it('serves the example app copied to /srv/myapp with systemctl enable --now tsgunicorn@myapp, started at boot, and journals the request', async () => {
    const m = machine();
    await installExampleApp(m);
    await m.writeFile('/etc/tsgunicorn/myapp.ini', CONFIG);
    const enable = await m.systemctl('enable', '--now', 'tsgunicorn@myapp');
    if (enable.code !== 0) throw new Error(`${output(enable)}\n${await diagnose(m, unit)}`);
    // What boot starts: the service, which pulls in its socket.
    expect((await m.run(['systemctl', 'is-enabled', unit])).trim()).toBe('enabled');
    expect((await m.run(['systemctl', 'list-dependencies', '--plain', 'multi-user.target'])).split('\n').map((l) => l.trim())).toContain(
      unit,
    );
    const marker = `package-e2e-${suite}-${Date.now()}`;
    const reply = await request(`${url}?from=${marker}`);
    expect(reply).toMatchObject({ status: 200, body: EXAMPLE_GREETING });
    await waitFor(
      async () => ((await m.journal(unit)).stdout.includes(`GET /?from=${marker}`) ? true : undefined),
      10_000,
      () => `journalctl -u ${unit} does not show the request GET /?from=${marker}`,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose(m, unit)}`);
    });
  });

  it('upgrades to a newer build while the instance serves: config untouched, no refused request, new version runs', async () => {
    const m = machine();
    const deb = builtDeb('upgradeDeb', 'upgradeDebError');
    copyFileSync(deb, path.join(m.root, 'root/tsgunicorn-upgrade.deb'));
    const configBefore = await m.run(['sha256sum', '/etc/tsgunicorn/myapp.ini']);
    const masterBefore = await property(m, unit, 'MainPID');

    let upgrading = true;
    // Two clients, each on a new connection per request, paced: a few minutes stay far from exhausting loopback ports.
    const requests = load({ url, clients: 2, durationMs: 200_000, total: 2 * 10_000, pauseMs: 10, while: () => upgrading });
    const started = Date.now();
    const upgrade = await aptGet(m, 'install', '/root/tsgunicorn-upgrade.deb');
    const took = Date.now() - started;
    // And a little after, while the restarted instance settles.
    await sleep(2_000);
    upgrading = false;
    const served = await requests;
    rmSync(path.join(m.root, 'root/tsgunicorn-upgrade.deb'));
    console.log(
      `[${suite}] upgrade to ${inject('upgradeProgramVersion')}: apt install took ${(took / 1000).toFixed(1)} s; requests meanwhile: ${served.ok} ok, failed ${JSON.stringify(served.reasons)}`,
    );
    expect(upgrade.code, output(upgrade)).toBe(0);

    expect(served.reasons.ECONNREFUSED ?? 0).toBe(0);
    expect(served.reasons).toEqual({});
    expect([...served.bodies.keys()]).toEqual([EXAMPLE_GREETING]);
    expect(served.ok).toBeGreaterThan(0);
    expect(await m.run(['sha256sum', '/etc/tsgunicorn/myapp.ini'])).toBe(configBefore);
    expect((await m.run(['tsgunicorn', '--version'])).trim()).toBe(inject('upgradeProgramVersion'));
    // The running instance was restarted onto the new version, and serves.
    expect(await property(m, unit, 'ActiveState')).toBe('active');
    expect(await property(m, unit, 'MainPID')).not.toBe(masterBefore);
    expect(await request(url)).toMatchObject({ status: 200, body: EXAMPLE_GREETING });
  }, 240_000);

  it("apt remove stops the instance; apt purge then leaves nothing of the package but the admin's files", async () => {
    const m = machine();
    const remove = await aptGet(m, 'remove', 'tsgunicorn');
    expect(remove.code, output(remove)).toBe(0);
    expect((await m.exec(['systemctl', 'is-active', unit, 'tsgunicorn@myapp.socket'])).stdout.split('\n').filter(Boolean)).toEqual([
      'inactive',
      'inactive',
    ]);
    const after = await attempt(url, { timeoutMs: 2_000 });
    expect(after.ok ? 'answered' : after.reason).toBe('ECONNREFUSED');
    expect((await m.exec(['pgrep', '-u', 'tsgunicorn'])).stdout).toBe('');

    const started = Date.now();
    const purge = await aptGet(m, 'purge', 'tsgunicorn');
    console.log(`[${suite}] apt remove + purge: purge took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    expect(purge.code, output(purge)).toBe(0);
    // Quietly: no dpkg warning about directories it shares with systemd, no deluser chatter.
    expect(
      `${remove.stdout}${remove.stderr}${purge.stdout}${purge.stderr}`.split('\n').filter((l) => /warn|not empty|crontab/i.test(l)),
    ).toEqual([]);
    // Nor what the instances' RuntimeDirectory= left in /run (a mount the file listing below skips).
    expect((await m.exec(['test', '-e', '/run/tsgunicorn'])).code).toBe(1);
    expect((await m.exec(['getent', 'passwd', 'tsgunicorn'])).code).toBe(2);
    expect((await m.exec(['getent', 'group', 'tsgunicorn'])).code).toBe(2);

    const filesAfter = await listFiles(m);
    const before = new Set(filesBefore);
    const afterSet = new Set(filesAfter);
    expect(filesBefore.length).toBeGreaterThan(1000);
    expect(filesBefore.filter((f) => !afterSet.has(f))).toEqual([]);
    expect(filesAfter.filter((f) => !before.has(f)).map((f) => f.split(' ')[0])).toEqual(ADMIN_PATHS);
    expect(await m.run(['cat', '/etc/tsgunicorn/myapp.ini'])).toBe(CONFIG);
    expect(await m.run(['cat', '/srv/myapp/app.ts'])).toBe(exampleApp);
  }, 180_000);
});

/** The path of a .deb the global setup built, or the reason it could not. */
function builtDeb(key: 'deb' | 'upgradeDeb', errorKey: 'debError' | 'upgradeDebError'): string {
  const error = inject(errorKey);
  if (error) throw new Error(`${inject(key)} could not be built:\n${error}`);
  return inject(key);
}

/** The rows of a `tsgunicorn doctor` table found in text (postinst or doctor output). */
function doctorRows(text: string): { check: string; status: string }[] {
  const lines = text.split('\n');
  const header = lines.findIndex((l) => /^CHECK\s+REQUIRED\s+FOUND\s+STATUS\s*$/.test(l));
  if (header < 0) return [];
  const rows: { check: string; status: string }[] = [];
  for (const line of lines.slice(header + 1)) {
    const m = /^(\S+(?: \S+)*)\s{2,}.*\s(ok|unmet|note)\s*$/.exec(line);
    if (!m) break;
    rows.push({ check: m[1]!, status: m[2]! });
  }
  return rows;
}

const output = (r: ExecResult): string => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
