// Socket activation as systemd does it (sd_listen_fds(3)), without systemd: a
// launcher passes a listening socket at fd 3 with LISTEN_FDS and LISTEN_PID.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { request } from '../helpers/http.js';
import { CLI, cleanEnv, FIXTURES, ROOT } from '../helpers/tsgunicorn.js';

const launched: ReturnType<typeof spawn>[] = [];
// Each launch is its own process group, so a wrapper, the master and its workers all go.
afterEach(() => {
  for (const proc of launched.splice(0)) {
    try {
      process.kill(-proc.pid!, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
});

async function activate(args: string[], env: NodeJS.ProcessEnv = {}) {
  const proc = spawn('python3', [path.join(FIXTURES, 'socket-activate.py'), process.execPath, CLI, ...args], {
    cwd: ROOT,
    env: { ...cleanEnv(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  launched.push(proc);
  let output = '';
  proc.stderr.on('data', (d) => (output += d));
  const [portLine] = (await once(proc.stdout, 'data')) as [Buffer];
  const port = Number(portLine.toString().trim().split('\n')[0]);
  for (let i = 0; i < 200 && !/Booted/.test(output); i++) await new Promise((r) => setTimeout(r, 50));
  return { proc, port, output: () => output };
}

it('serves on the socket it inherits, ignores bind, and hides LISTEN_* from the app', async () => {
  const { proc, port, output } = await activate(['-w', '2', '-b', '127.0.0.1:1', path.join(FIXTURES, 'pid-app.mjs')]);
  expect(output()).toMatch(new RegExp(`Listening at: http://127\\.0\\.0\\.1:${port} \\(fd 3 web from systemd\\)`));
  expect(await request(`http://127.0.0.1:${port}/pid`)).toMatchObject({ status: 200 });
  for (const name of ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES']) {
    expect((await request(`http://127.0.0.1:${port}/env?name=${name}`)).body).toBe('');
  }
  proc.kill('SIGTERM');
  const [code] = await once(proc, 'exit');
  expect(code).toBe(0);
});

it('ignores LISTEN_FDS meant for another process (LISTEN_PID differs) and binds instead', async () => {
  // The launcher sets LISTEN_PID to its own pid, which exec keeps; a wrapper in
  // between (sh) gives the server another pid, as sd_listen_fds(3) requires.
  const { port, output } = await activate(
    ['-w', '1', '-b', '127.0.0.1:0', path.join(FIXTURES, 'pid-app.mjs')].map((a) => a),
    {},
  );
  expect(port).toBeGreaterThan(0);
  expect(output()).toMatch(/from systemd/);
  const wrapped = spawn(
    'python3',
    [
      path.join(FIXTURES, 'socket-activate.py'),
      'sh',
      '-c',
      `"$0" "$@"; exit $?`,
      process.execPath,
      CLI,
      '-w',
      '1',
      '-b',
      '127.0.0.1:0',
      path.join(FIXTURES, 'pid-app.mjs'),
    ],
    {
      cwd: ROOT,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    },
  );
  launched.push(wrapped);
  let out = '';
  wrapped.stderr.on('data', (d) => (out += d));
  for (let i = 0; i < 200 && !/Booted/.test(out); i++) await new Promise((r) => setTimeout(r, 50));
  expect(out).toMatch(/Listening at: http:\/\/127\.0\.0\.1:\d+ \(\d+\)/);
  expect(out).not.toMatch(/from systemd/);
});
