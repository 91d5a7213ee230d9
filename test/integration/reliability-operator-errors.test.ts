// Operator errors: each ends with its exit code and a clear message that names
// what is wrong (the address, the file), without a stack trace to read through.
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { STACK_FRAME, errorText, runAsOperator, scratch } from '../helpers/operator.js';
import { CLI, FIXTURES, ROOT, startServer, type Running } from '../helpers/tsgunicorn.js';

const servers: Running[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
const APP = path.join(FIXTURES, 'reliability/app.mjs');
const exitCodes: Record<string, number | string> = {};
afterAll(() => {
  const summary = Object.entries(exitCodes).map(([what, code]) => `${what} → ${code}`);
  console.log(`reliability: operator errors ${summary.length} (${summary.join(', ')})`);
});

describe('operator errors', () => {
  it('the port in use: the address and how to find its owner, exit 1', async () => {
    const server = await startServer(['-w', '1', APP]);
    servers.push(server);
    const { code, output } = await runAsOperator(['-b', `127.0.0.1:${server.port}`, APP]);
    exitCodes['port in use'] = code;
    expect(code).toBe(1);
    const text = errorText(output);
    expect(text.split('\n')).toHaveLength(1);
    expect(text).toMatch(new RegExp(`\\[ERROR\\] Connection in use: 127\\.0\\.0\\.1:${server.port}\\b.*ss -ltnp.*lsof -i :${server.port}`));
  });

  it('a missing app file: exit 4, the file named, no stack trace and no collateral worker kill reported', async () => {
    const missing = path.join(scratch(), 'missing-app.mjs');
    const { code, output } = await runAsOperator(['-b', '127.0.0.1:0', '-w', '2', missing]);
    exitCodes['missing app file'] = code;
    expect(code).toBe(4);
    const text = errorText(output);
    expect(text).toContain(`APP module ${missing} does not exist`);
    expect(text).not.toMatch(STACK_FRAME);
    // The master stops the other booting worker itself: that is no worker fault.
    expect(text).not.toMatch(/was sent SIGKILL/);
  });

  it('a syntax error in an ES module the app imports: exit 4, that file, line and column named', async () => {
    const dir = scratch();
    writeFileSync(path.join(dir, 'routes.mjs'), 'export const routes = {\n  home: () => "x"\n  about: () => "y",\n};\n');
    writeFileSync(
      path.join(dir, 'app.mjs'),
      "import { routes } from './routes.mjs';\nexport const app = (req, res) => res.end(routes.home());\n",
    );
    const { code, output } = await runAsOperator(['-b', '127.0.0.1:0', '-w', '1', path.join(dir, 'app.mjs')]);
    expect(code).toBe(4);
    // (errorText leaves out the empty line before the message.)
    expect(errorText(output)).toContain(
      `Failed to load the app:\n${path.join(dir, 'routes.mjs')}:3:3\n  about: () => "y",\n  ^^^^^\nSyntaxError: Unexpected identifier 'about'`,
    );
    const check = await runAsOperator(['--check-config', path.join(dir, 'app.mjs')]);
    expect(check.code).toBe(4);
    expect(check.output).toContain(`cannot load the app: ${path.join(dir, 'routes.mjs')}:3:3\n`);
  });

  it('an unreadable app file: exit 4, the file and "permission denied" named, no stack trace', async () => {
    const dir = scratch();
    const app = path.join(dir, 'app.mjs');
    writeFileSync(app, 'export const app = (req, res) => res.end("x");\n');
    chmodSync(app, 0o000);
    // The CLI itself must be reachable for the unprivileged user, or this case proves nothing.
    expect(
      (await runAsOperator(['--version'], { unprivileged: true })).code,
      `nobody cannot run ${CLI} (is ${ROOT} readable by others?)`,
    ).toBe(0);
    const { code, output } = await runAsOperator(['-b', '127.0.0.1:0', '-w', '1', app], { unprivileged: true });
    exitCodes['unreadable app file'] = code;
    expect(code).toBe(4);
    const text = errorText(output);
    expect(text).toContain(app);
    expect(text).toMatch(/permission denied/i);
    expect(text).not.toMatch(STACK_FRAME);
  });

  it('an unreadable config file: exit 2, one line naming it', async () => {
    const dir = scratch();
    const ini = path.join(dir, 'app.ini');
    writeFileSync(ini, 'workers = 2\n');
    chmodSync(ini, 0o000);
    const { code, output } = await runAsOperator(['-c', ini, APP], { unprivileged: true });
    exitCodes['unreadable config file'] = code;
    expect(code).toBe(2);
    expect(output.trim().split('\n')).toEqual([`tsgunicorn: error: config file ${ini}: cannot read it (permission denied)`]);
  });

  const badIni: Array<[string, string, RegExp]> = [
    ['a line that is no setting', 'this is not ini\n', /bad\.ini:1: unknown setting "this is not ini"/],
    ['a doubled =', 'workers = = 2\n', /bad\.ini:1: workers: expected an integer from 1 to 1024, or auto, got "= 2"/],
    ['an empty bind (no socket at all)', 'bind =\n', /bad\.ini:1: bind: expected/],
  ];
  for (const [what, content, message] of badIni) {
    it(`a config file with ${what}: exit 2, one line, nothing started`, async () => {
      const ini = path.join(scratch(), 'bad.ini');
      writeFileSync(ini, content);
      const { code, output } = await runAsOperator(['-c', ini, APP], { timeoutMs: 5000 });
      exitCodes[`bad ini: ${what}`] = code;
      expect(output).not.toMatch(/Booting worker/);
      expect(code).toBe(2);
      expect(output.trim().split('\n')).toHaveLength(1);
      expect(output).toMatch(message);
    });
  }
});
