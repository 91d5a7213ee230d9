// tsgunicorn as PID 1 without an init (a container): orphans reparented to the
// master are reaped, TERM stops it gracefully with exit 0, logs go to stdout/stderr.
// Run in a new PID namespace, as a container runtime would start it, with the
// command and environment of the example packaging/Containerfile.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { request } from '../helpers/http.js';
import { freePort } from '../helpers/ports.js';
import { CLI, FIXTURES, ROOT, cleanEnv } from '../helpers/tsgunicorn.js';
import { until } from '../helpers/wait.js';

/** [pid, state, comm] of each child of `parent`, from /proc/PID/stat. */
function childrenOf(parent: number): Array<{ pid: number; state: string; comm: string }> {
  const found = [];
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
    } catch {
      continue;
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(ppid) === parent) found.push({ pid: Number(entry), state: state!, comm });
  }
  return found;
}

/** The example's ENTRYPOINT arguments after the command, and its ENV settings. */
function containerfile(): { args: string[]; env: Record<string, string> } {
  const text = readFileSync(`${ROOT}/packaging/Containerfile`, 'utf8');
  const [command, ...args] = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(text)![1]!) as string[];
  expect(command).toBe('tsgunicorn');
  const envBlock = /^ENV ((?:.*\\\n)*.*)$/m.exec(text)![1]!;
  const env = Object.fromEntries([...envBlock.matchAll(/(TSGUNICORN_\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
  return { args, env };
}

it('as PID 1 reaps orphaned processes, and stops on TERM with exit 0', async () => {
  const port = await freePort();
  const example = containerfile();
  expect(example.args).toEqual(['--bind', '0.0.0.0:8000']);
  expect(example.env).toMatchObject({ TSGUNICORN_ACCESSLOG: '-', TSGUNICORN_ACCESS_LOG_JSON: 'true' });
  const unshare = spawn(
    'unshare',
    [
      ...(process.getuid?.() === 0 ? [] : ['--map-root-user']),
      '--pid',
      '--fork',
      '--kill-child',
      '--mount-proc',
      // Loopback and a free port instead of the image's 0.0.0.0:8000.
      process.execPath,
      CLI,
      '--bind',
      `127.0.0.1:${port}`,
      '-w',
      '1',
      `${FIXTURES}/orphan-app.mjs`,
    ],
    { env: { ...cleanEnv(), ...example.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  unshare.stdout.on('data', (d) => (stdout += d));
  unshare.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => unshare.on('exit', (code) => resolve(code)));
  try {
    // unshare --fork's child is the namespace's PID 1: the master.
    const master = await until('the master as PID 1', () => childrenOf(unshare.pid!).find((c) => c.comm !== 'unshare')?.pid);
    expect(readFileSync(`/proc/${master}/status`, 'latin1')).toMatch(/^NSpid:\s+\d+\s+1$/m);
    await until('the server answers', () =>
      request(`http://127.0.0.1:${port}/`).then(
        (r) => r.status === 200,
        () => false,
      ),
    );

    // The worker's shell exits at once, leaving its background sleep to the master.
    await request(`http://127.0.0.1:${port}/orphan`);
    const orphan = await until('the orphan is reparented to the master', () => childrenOf(master).find((c) => c.comm === 'sleep')?.pid);
    process.kill(orphan, 'SIGKILL');
    // Unreaped, it would stay in /proc as a zombie (state Z) for as long as the master runs.
    await until('the orphan is reaped', () => childrenOf(master).every((c) => c.pid !== orphan));
    expect(childrenOf(master).filter((c) => c.state === 'Z')).toEqual([]);

    process.kill(master, 'SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/Graceful shutdown: draining for 5 s/);
    expect(stderr).toMatch(/Shutting down: Master/);
    const entries = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(entries).toContainEqual(expect.objectContaining({ method: 'GET', path: '/orphan', status: 200 }));
  } finally {
    unshare.kill('SIGKILL');
  }
});
