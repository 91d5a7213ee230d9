// The arm64 .deb (`npm run package -- --arch arm64`, cross-built on this host)
// on an arm64 Debian 12, booted under systemd-nspawn with every arm64 program
// run by qemu-user through binfmt_misc: what proves the package works there,
// in one container and in order (emulation makes each step several times slower).
//
// One change to the unit under emulation, in a drop-in: PrivateUsers=no. qemu-user
// runs threads of its own in every emulated process, and the kernel refuses
// unshare(CLONE_NEWUSER) to a multithreaded process (EINVAL), so systemd cannot
// set up the unit's user namespace there; on arm64 hardware the unit runs as shipped.
import { mkdtempSync, readFileSync, rmSync, statSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLE_GREETING, aptGet, diagnose, installExampleApp, listFiles, property, start, unitPids } from './fixture.js';
import { buildDeb } from './global-setup.js';
import { boot, enableEmulation, runHost, waitFor, type ExecResult, type Machine } from './harness.js';
import { load, request } from '../helpers/http.js';

const repo = path.resolve(import.meta.dirname, '../..');
const { version } = JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string };
const debName = `tsgunicorn_${version}-1_arm64.deb`;
// Where build-deb.sh puts a package for another architecture than the host's.
const deb = path.join(repo, 'dist/arm64', debName);

const unit = 'tsgunicorn@myapp.service';
const url = 'http://127.0.0.1:8000/';
const CONFIG = `; written by the e2e arm64 test
app = /srv/myapp/app.ts
workers = 2
accesslog = -
`;
const ADMIN_PATHS = ['/etc/tsgunicorn', '/etc/tsgunicorn/myapp.ini', '/srv/myapp', '/srv/myapp/app.ts'];
// Every ELF file the package ships: the runtime and the four native addons.
const ELF_FILES = [
  'usr/lib/tsgunicorn/bin/node',
  'usr/lib/tsgunicorn/native/reaper/build/Release/reaper.node',
  'usr/lib/tsgunicorn/native/watchdog/build/Release/watchdog.node',
  'usr/lib/tsgunicorn/node_modules/sd-notify/build/Release/notify.node',
  'usr/lib/tsgunicorn/node_modules/systemd-journald/build/Release/journal_send.node',
];

// At collection: binfmt_misc is the host kernel's, and a kernel that refuses it skips the file.
const refused = enableEmulation('arm64');
if (refused) console.warn(`arm64 e2e test skipped: ${refused}`);

describe.skipIf(refused !== undefined)('bookworm on arm64 (emulated): the arm64 .deb', () => {
  let machine: Machine | undefined;
  let buildError = '';
  let filesBefore: string[] = [];

  beforeAll(async () => {
    let started = Date.now();
    buildError = await buildDeb(deb, 'packaging/build-deb.sh --arch arm64', [
      'bash',
      path.join(repo, 'packaging/build-deb.sh'),
      '--arch',
      'arm64',
    ]);
    console.log(`[arm64] ${debName}: build or up-to-date check took ${((Date.now() - started) / 1000).toFixed(0)} s`);
    started = Date.now();
    machine = await boot('bookworm', { arch: 'arm64' });
    console.log(`[arm64] rootfs and boot took ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }, 30 * 60_000);
  afterAll(async () => {
    await machine?.stop();
  });
  const m = (): Machine => {
    if (!machine) throw new Error('the arm64 container did not boot (see the beforeAll error)');
    return machine;
  };
  const builtDeb = (): string => {
    if (buildError) throw new Error(`${deb} could not be built:\n${buildError}`);
    return deb;
  };

  it('every ELF file in the .deb is an arm64 one, as `file` reads it', async () => {
    const tree = mkdtempSync(path.join(os.tmpdir(), 'tsgunicorn-arm64-deb-'));
    try {
      const extract = await runHost('dpkg-deb', ['-x', builtDeb(), tree], 60_000);
      expect(extract.code, extract.stderr).toBe(0);
      const described = await runHost('sh', ['-c', 'cd "$1" && find . -type f -exec file {} +', 'sh', tree], 60_000);
      expect(described.code, described.stderr).toBe(0);
      const elves = described.stdout
        .split('\n')
        .filter((line) => / ELF /.test(line))
        .map((line) => /^\.\/([^:]+): +(.*)$/.exec(line)!.slice(1) as [string, string])
        .sort(([a], [b]) => (a < b ? -1 : 1));
      expect(elves.map(([file]) => file)).toEqual(ELF_FILES);
      for (const [file, kind] of elves) expect(`${file}: ${kind}`).toMatch(/: ELF 64-bit LSB .*, ARM aarch64,/);
    } finally {
      rmSync(tree, { recursive: true, force: true });
    }
  });

  it(
    `apt install ./${debName} works offline; its runtime is arm64's and the CLI runs`,
    async () => {
      const deb = builtDeb();
      copyFileSync(deb, path.join(m().root, 'root', debName));
      filesBefore = await listFiles(m());
      const started = Date.now();
      const install = await aptGet(m(), 'install', `/root/${debName}`);
      console.log(
        `[arm64] ${debName}: ${(statSync(deb).size / 1e6).toFixed(1)} MB, apt install took ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
      expect(install.code, output(install)).toBe(0);
      expect(install.stdout).toMatch(/^0 upgraded, 1 newly installed, 0 to remove/m);
      expect((await m().run(['dpkg-query', '-W', '-f=${Architecture}', 'tsgunicorn'])).trim()).toBe('arm64');
      expect((await m().run(['/usr/lib/tsgunicorn/bin/node', '-p', 'process.arch'])).trim()).toBe('arm64');
      expect((await m().run(['tsgunicorn', '--version'], { timeoutMs: 120_000 })).trim()).toBe(version);
    },
    15 * 60_000,
  );

  it(
    'systemctl start tsgunicorn@myapp returns ready; its workers serve :8000, ping the watchdog and journal the request',
    async () => {
      await installExampleApp(m());
      await m().writeFile('/etc/tsgunicorn/myapp.ini', CONFIG);
      await m().writeFile('/etc/systemd/system/tsgunicorn@.service.d/emulated.conf', '[Service]\nPrivateUsers=no\n');
      await m().run(['systemctl', 'daemon-reload']);
      const started = Date.now();
      await start(m(), unit);
      console.log(`[arm64] systemctl start took ${((Date.now() - started) / 1000).toFixed(1)} s`);
      // Type=notify: start returned on the master's READY=1, and its STATUS= counts the workers.
      expect(await property(m(), unit, 'ActiveState')).toBe('active');
      expect(await property(m(), unit, 'StatusText')).toMatch(/workers/);

      const marker = `arm64-e2e-${Date.now()}`;
      expect(await request(`${url}?from=${marker}`, { timeoutMs: 30_000 })).toMatchObject({ status: 200, body: EXAMPLE_GREETING });
      // The master and its two workers (the unit's cgroup), each an arm64 process.
      const pids = await unitPids(m(), unit);
      expect(pids.length).toBeGreaterThanOrEqual(3);

      // WATCHDOG=1 reaches systemd: the time of the last one moves on.
      const firstPing = await property(m(), unit, 'WatchdogTimestampMonotonic');
      expect(Number(firstPing)).toBeGreaterThan(0);
      await waitFor(
        async () => ((await property(m(), unit, 'WatchdogTimestampMonotonic')) !== firstPing ? true : undefined),
        60_000,
        () => `systemd got no WATCHDOG=1 after the one at ${firstPing} µs`,
        1_000,
      );
      await waitFor(
        async () => ((await m().journal(unit)).stdout.includes(`GET /?from=${marker}`) ? true : undefined),
        30_000,
        () => `journalctl -u ${unit} does not show the request GET /?from=${marker}`,
        500,
      ).catch(async (err: Error) => {
        throw new Error(`${err.message}\n${await diagnose(m(), unit)}`);
      });
    },
    10 * 60_000,
  );

  it(
    '`tsgunicorn status myapp` shows both workers and the requests they served',
    async () => {
      for (let i = 0; i < 9; i++) expect((await request(url, { timeoutMs: 30_000 })).body).toBe(EXAMPLE_GREETING);
      // pid, generation, age, ready, requests, in flight, oldest in flight, RSS, CPU.
      const row = /^(\d+) +1 +.+? +ready +(\d+) +0 +- +(\d+) MB +[\d.]+%$/;
      let table = '';
      const rows = await waitFor(
        async () => {
          table = await m().run(['tsgunicorn', 'status', 'myapp'], { timeoutMs: 120_000 });
          const workers = table.split('\n').filter((line) => /^\d+ +1 +\S/.test(line));
          return workers.length === 2 && workers.every((line) => row.test(line)) ? workers : undefined;
        },
        120_000,
        () => `status rows with RSS and CPU:\n${table}`,
        2_000,
      );
      expect(table).toMatch(new RegExp(`master pid ${(await unitPids(m(), unit))[0]} .* generation 1 · running`));
      // The one request of the previous test, and these nine.
      expect(rows.reduce((sum, line) => sum + Number(row.exec(line)![2]), 0)).toBe(10);
    },
    5 * 60_000,
  );

  it(
    'systemctl reload under a small load fails no request and keeps the master',
    async () => {
      const mainPid = await property(m(), unit, 'MainPID');
      let reloading = true;
      const running = load({ url, clients: 2, durationMs: 5 * 60_000, pauseMs: 50, while: () => reloading });
      const reload = await m().exec(['systemctl', 'reload', unit], { timeoutMs: 5 * 60_000 });
      // And a little after, while the new workers take over.
      for (let i = 0; i < 5; i++) await request(url, { timeoutMs: 30_000 });
      reloading = false;
      const result = await running;
      console.log(`[arm64] reload under load: ${result.ok} ok, failed ${JSON.stringify(result.reasons)}`);
      if (reload.code !== 0) throw new Error(`${output(reload)}\n${await diagnose(m(), unit)}`);
      expect(result.reasons).toEqual({});
      expect(result.ok).toBeGreaterThan(0);
      expect(await property(m(), unit, 'MainPID')).toBe(mainPid);
    },
    10 * 60_000,
  );

  it(
    "apt purge leaves nothing of the package but the admin's files",
    async () => {
      await m().run(['rm', '-r', '/etc/systemd/system/tsgunicorn@.service.d']);
      await m().run(['systemctl', 'daemon-reload']);
      const purge = await aptGet(m(), 'purge', 'tsgunicorn');
      expect(purge.code, output(purge)).toBe(0);
      expect(`${purge.stdout}${purge.stderr}`.split('\n').filter((l) => /warn|not empty/i.test(l))).toEqual([]);
      expect((await m().exec(['getent', 'passwd', 'tsgunicorn'])).code).toBe(2);
      expect((await m().exec(['test', '-e', '/run/tsgunicorn'])).code).toBe(1);
      const filesAfter = await listFiles(m());
      const after = new Set(filesAfter);
      const before = new Set(filesBefore);
      expect(filesBefore.filter((f) => !after.has(f))).toEqual([]);
      expect(filesAfter.filter((f) => !before.has(f)).map((f) => f.split(' ')[0])).toEqual(ADMIN_PATHS);
    },
    10 * 60_000,
  );
});

const output = (r: ExecResult): string => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
