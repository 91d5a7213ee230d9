// Errors only the admin can fix, as the admin meets them under the unit: each
// fails the unit once (no restart loop; the socket unit stops with it, so clients are refused), says why in
// one journal entry at priority err under the instance's name, and once fixed
// the unit starts at once. And the instance fallbacks compose: an ini that only
// tunes settings beside an app in /srv/NAME, read by a reload.
import { beforeEach, describe, expect, it } from 'vitest';
import {
  diagnose,
  EXAMPLE_APP,
  EXAMPLE_GREETING,
  installExampleApp,
  journalEntries,
  listeningPorts,
  property,
  start,
  useMachine,
} from './fixture.js';
import { SUITES, waitFor, type Machine } from './harness.js';
import { request } from '../helpers/http.js';

const unit = 'tsgunicorn@myapp.service';
const socket = 'tsgunicorn@myapp.socket';

/** `systemctl start` that must fail; returns the unit's exit status and restart count once it has failed. */
async function failedStart(m: Machine): Promise<{ status: string; restarts: string; socket: string }> {
  const r = await m.systemctl('start', unit);
  if (r.code === 0) throw new Error(`systemctl start ${unit} succeeded\n${await diagnose(m, unit)}`);
  // Long enough for a restart (RestartSec= is 100 ms) to have happened, were there one.
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  return {
    status: await property(m, unit, 'ExecMainStatus'),
    restarts: await property(m, unit, 'NRestarts'),
    socket: await property(m, socket, 'ActiveState'),
  };
}

/** The journal entries of the unit at priority err or worse whose message matches. */
async function errEntries(m: Machine, pattern: RegExp): Promise<Record<string, string>[]> {
  return (await journalEntries(m, unit, '-p', 'err')).filter((e) => pattern.test(e.MESSAGE ?? ''));
}

async function reset(m: Machine): Promise<void> {
  await m.exec(['systemctl', 'stop', unit, socket]);
  await m.exec(['systemctl', 'reset-failed', unit, socket]);
  await m.run(['rm', '-rf', '/etc/tsgunicorn/myapp.ini', '/srv/myapp']);
  await m.run(['journalctl', '--rotate']);
  await m.run(['journalctl', '--vacuum-time=1s']);
}

describe.each(SUITES)('%s: operator errors under the unit', (suite) => {
  const machine = useMachine(suite);
  // Each test from a stopped instance with no config, app or journal, whatever the previous one left.
  beforeEach(async () => reset(machine()));

  it('a bad setting fails once with exit 2, an err entry under the instance name, and a fixed ini starts at once', async () => {
    const m = machine();
    await m.writeFile('/etc/tsgunicorn/myapp.ini', `app = ${EXAMPLE_APP}\nworkerz = 2\n`);
    expect(await failedStart(m)).toEqual({ status: '2', restarts: '0', socket: 'inactive' });
    const entries = await errEntries(m, /unknown setting "workerz"/);
    expect(entries.map((e) => ({ id: e.SYSLOG_IDENTIFIER, priority: e.PRIORITY }))).toEqual([{ id: 'myapp', priority: '3' }]);
    expect(entries[0]!.MESSAGE).toContain('/etc/tsgunicorn/myapp.ini:2');

    await m.writeFile('/etc/tsgunicorn/myapp.ini', `app = ${EXAMPLE_APP}\nworkers = 2\n`);
    await start(m, unit);
    expect(await request('http://127.0.0.1:8000/')).toMatchObject({ status: 200, body: EXAMPLE_GREETING });
  });

  it('an app that fails to load fails once with exit 4, and starts at once when fixed', async () => {
    const m = machine();
    await m.writeFile('/srv/myapp/app.mjs', "throw new Error('e2e: the app is broken');\n");
    expect(await failedStart(m)).toEqual({ status: '4', restarts: '0', socket: 'inactive' });
    expect((await errEntries(m, /e2e: the app is broken/)).length).toBeGreaterThan(0);
    await m.writeFile('/srv/myapp/app.mjs', "export const app = (req, res) => res.end('fixed');\n");
    await start(m, unit);
    expect(await request('http://127.0.0.1:8000/')).toMatchObject({ status: 200, body: 'fixed' });
  });

  it('a bad value and nothing to serve are err entries under the instance name, naming where they looked', async () => {
    const m = machine();
    await m.writeFile('/etc/tsgunicorn/myapp.ini', 'workers = lots\n');
    expect((await failedStart(m)).status).toBe('2');
    expect(
      (await errEntries(m, /myapp\.ini:1: workers: expected an integer from 1 to 1024, or auto, got "lots"/)).map(
        (e) => e.SYSLOG_IDENTIFIER,
      ),
    ).toEqual(['myapp']);

    await m.writeFile('/etc/tsgunicorn/myapp.ini', 'workers = 2\n');
    expect((await failedStart(m)).status).toBe('2');
    const [entry] = await errEntries(m, /nothing to serve/);
    expect(entry?.SYSLOG_IDENTIFIER).toBe('myapp');
    expect(entry?.MESSAGE).toContain(
      '/etc/tsgunicorn/myapp.ini sets no app, and /srv/myapp holds no app (looked for package.json "main", then server.*, index.*, app.*',
    );
  });

  it('an ini that only tunes settings, created beside a running /srv/NAME app, is read by reload and kept by restart', async () => {
    const m = machine();
    await installExampleApp(m);
    await start(m, unit);
    await m.writeFile('/etc/tsgunicorn/myapp.ini', 'accesslog = -\n');
    await m.run(['systemctl', 'reload', unit]);
    // The master's line, once the new workers serve (systemd's "Reloaded …" comes as soon as the HUP is sent).
    await waitFor(
      async () => (/Reloaded: \d+ new worker/.test((await m.journal(unit)).stdout) ? true : undefined),
      20_000,
      () => 'no "Reloaded: N new worker(s)" line',
    );
    const path = `/e2e-after-reload-${suite}`;
    expect((await request(`http://127.0.0.1:8000${path}`)).status).toBe(404);
    await waitFor(
      async () => ((await journalEntries(m, unit, `HTTP_PATH=${path}`)).length ? true : undefined),
      10_000,
      () => `no access entry for ${path}: the reload did not read the new ini`,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose(m, unit)}`);
    });
    await m.run(['systemctl', 'restart', unit]);
    expect(await request('http://127.0.0.1:8000/')).toMatchObject({ status: 200, body: EXAMPLE_GREETING });
    const printed = await m.run(['tsgunicorn', '--instance', 'myapp', '--print-config']);
    expect(printed).toMatch(/^app = \/srv\/myapp\/app\.ts +; found in \/srv\/myapp \(no app in the config\)$/m);
  });

  it('serves a server script in /srv/myapp (package.json main calls listen(3000)) with no ini, on the socket unit only', async () => {
    const m = machine();
    await m.writeFile('/srv/myapp/package.json', '{"name": "myapp", "main": "lib/start.js"}\n');
    await m.writeFile(
      '/srv/myapp/lib/start.js',
      "const http = require('node:http');\nhttp.createServer((req, res) => res.end('from a server script')).listen(3000);\n",
    );
    await start(m, unit);
    expect(await request('http://127.0.0.1:8000/')).toMatchObject({ status: 200, body: 'from a server script' });
    const ports = await listeningPorts(m, unit);
    if (ports.join() !== '8000') throw new Error(`ports of ${unit}: ${ports.join(', ')}\n${await diagnose(m, unit)}`);
  });
});
