// How APP is found, loaded and named: the bugs a new user's first tries found.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { request } from '../helpers/http.js';
import { FIXTURES, ROOT, runCli, serversStoppedAfterEach, workerPids } from '../helpers/tsgunicorn.js';

const start = serversStoppedAfterEach();
const fixture = (name: string) => path.join(FIXTURES, name);
const title = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '');

describe('loading the app', () => {
  it('a relative --chdir is applied once: the app is found and workers start in it', async () => {
    const server = await start(['-w', '1', '--chdir', path.relative(ROOT, FIXTURES), 'pid-app.mjs'], { cwd: ROOT });
    expect((await request(`${server.url}/pid`)).status).toBe(200);
  });

  it('an error thrown or rejected in a fetch handler is logged and answered 500', async () => {
    const server = await start(['-w', '1', fixture('fetch-throws.mjs')]);
    expect((await request(`${server.url}/throw`)).status).toBe(500);
    expect((await request(`${server.url}/reject`)).status).toBe(500);
    await server.waitFor(/\[ERROR\] Error in the fetch handler/);
    await server.waitFor(/boom from fetch \/reject/);
    expect(server.output()).toMatch(/boom from fetch \/throw/);
  });

  it('a function that declares no parameters is refused at boot, naming the setting that decides', async () => {
    const refused = await runCli(['-b', '127.0.0.1:0', '-w', '1', fixture('no-params-app.mjs')]);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/app is a function that declares no parameters.*set interface = node or interface = fetch/);
    const server = await start(['-w', '1', '--interface', 'node', fixture('no-params-app.mjs')]);
    expect((await request(server.url)).body).toBe('wrapped');
  });

  it('the boot line names the detected interface, not the setting', async () => {
    const server = await start(['-w', '1', fixture('hono-app.mjs')]);
    expect(server.output()).toMatch(/Booted 1 worker \(fetch app .*hono-app\.mjs\)/);
  });

  it('process titles carry proc_name, else the app as given', async () => {
    const server = await start(['-w', '1', fixture('pid-app.mjs')]);
    expect(title(server.proc.pid!)).toBe(`tsgunicorn: master [${fixture('pid-app.mjs')}]`);
    const [worker] = await workerPids(server.proc.pid!);
    expect(title(worker!)).toBe(`tsgunicorn: worker [${fixture('pid-app.mjs')}]`);
    await server.stop();
    const named = await start(['-w', '1', '-n', 'shop', fixture('pid-app.mjs')]);
    expect(title(named.proc.pid!)).toBe('tsgunicorn: master [shop]');
  });

  it('a mistyped APP is refused before any worker starts (a mistyped subcommand: see control.test.ts)', async () => {
    const result = await runCli(['missing-app.mjs']);
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(/APP module .*missing-app\.mjs does not exist/);
    expect(result.stderr + result.stdout).not.toMatch(/Booting worker/);
  });

  it('a .ts app on a Node that cannot strip types says which Node it needs', async () => {
    // A Node older than 22.18 behaves like this one with type stripping turned off.
    const { spawnSync } = await import('node:child_process');
    const cli = path.join(ROOT, 'bin/tsgunicorn.js');
    const result = spawnSync(process.execPath, ['--no-experimental-strip-types', cli, '--check-config', fixture('typed-app.ts')], {
      encoding: 'utf8',
    });
    expect(result.status).toBe(4);
    expect(result.stderr).toMatch(
      /typed-app\.ts is TypeScript, and this Node\.js \(v[\d.]+\) cannot strip its types: run tsgunicorn with Node\.js 24/,
    );
  });
});
