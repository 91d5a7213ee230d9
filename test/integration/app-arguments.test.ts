// APP with arguments (`tsgunicorn [options] APP -- ARGS`, app_args), and an APP
// that is a package's bin: the workers' process.argv is what `node APP ARGS`
// gives, and a bin is served as the script it runs.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildReactRouter } from '../helpers/framework-builds.js';
import { request } from '../helpers/http.js';
import { FIXTURES, ROOT, runCli, serversStoppedAfterEach } from '../helpers/tsgunicorn.js';
import { until } from '../helpers/wait.js';

const start = serversStoppedAfterEach();
const script = (name: string) => path.join(FIXTURES, 'server-scripts', name);
const ARGS = ['--mode', 'two words', 'a "quote"', ''];

/** process.argv.slice(1) under plain `node FILE ARGS`, or of FILE run itself (a bin, from a shell). */
async function plainArgv(file: string, args: string[], run: 'node' | 'itself' = 'node'): Promise<string[]> {
  const [command, argv] = run === 'node' ? [process.execPath, [file, ...args]] : [file, args];
  const { stdout } = await promisify(execFile)(command, argv, { env: { ...process.env, PRINT_ARGV: '1' } });
  return JSON.parse(stdout) as string[];
}

describe('APP -- ARGS', () => {
  it('the workers get process.argv as `node APP ARGS` gives it', async () => {
    const server = await start(['-w', '2', script('argv.mjs'), '--', ...ARGS]);
    expect(JSON.parse((await request(server.url)).body)).toEqual(await plainArgv(script('argv.mjs'), ARGS));
  });

  it('app_args in the config file, or TSGUNICORN_APP_ARGS, gives the same', async () => {
    const written = '--mode "two words" "a \\"quote\\"" ""';
    const config = path.join(mkdtempSync(path.join(os.tmpdir(), 'tsg-args-')), 'app.ini');
    writeFileSync(config, `app = ${script('argv.mjs')}\napp_args = ${written}\n`);
    const fromFile = await start(['-w', '1', '-b', '127.0.0.1:0', '-c', config]);
    const fromEnv = await start(['-w', '1', script('argv.mjs')], { env: { TSGUNICORN_APP_ARGS: written } });
    for (const server of [fromFile, fromEnv]) {
      expect(JSON.parse((await request(server.url)).body)).toEqual(await plainArgv(script('argv.mjs'), ARGS));
    }
  });

  it('with APP from the config file, everything after -- is the app’s', async () => {
    const config = path.join(mkdtempSync(path.join(os.tmpdir(), 'tsg-args-')), 'app.ini');
    writeFileSync(config, `app = ${script('argv.mjs')}\n`);
    const server = await start(['-w', '1', '-b', '127.0.0.1:0', '-c', config, '--', ...ARGS]);
    expect(JSON.parse((await request(server.url)).body)).toEqual(await plainArgv(script('argv.mjs'), ARGS));
  });

  it('a word after APP without -- is refused, saying where arguments go', async () => {
    const result = await runCli(['-b', '127.0.0.1:0', script('argv.mjs'), 'extra']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(
      /unexpected argument "extra": arguments for the app go after --, as in tsgunicorn \[options\] APP -- ARGS/,
    );
  });
});

describe('a package bin as APP', () => {
  it.each([
    ['a node script without an extension, starting with #!', 'bin/serve-argv'],
    ['a shell shim that execs node on the script', 'bin/serve-argv-shim'],
  ])('%s is served as the script it runs, with the argv it has when run', async (_, bin) => {
    const server = await start(['-w', '1', script(bin), '--', 'x']);
    expect(JSON.parse((await request(server.url)).body)).toEqual(await plainArgv(script(bin), ['x'], 'itself'));
  });
});

describe('React Router’s own server: react-router-serve build/server/index.js', () => {
  let buildDir = '';
  beforeAll(async () => {
    const build = await buildReactRouter();
    buildDir = path.dirname(path.dirname(path.dirname(build.entry)));
    if (build.seconds > 0) console.log(`react-router build: ${build.seconds} s`);
  }, 300_000);

  it('served from 2 workers through its node_modules/.bin link, with its argument', async () => {
    const bin = path.join(ROOT, 'node_modules', '.bin', 'react-router-serve');
    const server = await start(['-w', '2', '--chdir', buildDir, bin, '--', 'build/server/index.js']);
    const pids = new Set<string>();
    await until('both workers render the page', async () => {
      const { status, body } = await request(server.url);
      expect(status).toBe(200);
      expect(body).toContain('Hello from React Router');
      // React escapes the JSON's quotes in the page.
      expect(body).toContain(JSON.stringify([bin, 'build/server/index.js']).replaceAll('"', '&quot;'));
      pids.add(/<p id="pid">(\d+)<\/p>/.exec(body)![1]!);
      return pids.size === 2 ? true : undefined;
    });
    expect(server.output()).toMatch(/\[react-router-serve\] http:\/\/localhost:\d+/);
  });
});
