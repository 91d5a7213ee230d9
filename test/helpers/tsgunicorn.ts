// Runs the real CLI as a child process, as a user would, and watches its logs.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(ROOT, 'bin/tsgunicorn.js');
export const FIXTURES = path.join(ROOT, 'test/fixtures');
export const HELLO_APP = path.join(ROOT, 'packaging/examples/hello/app.ts');

export interface Running {
  proc: ChildProcess;
  /** http://127.0.0.1:PORT of the first listening socket. */
  url: string;
  port: number;
  output(): string;
  /** Resolves with the first log line matching `pattern`, waiting up to `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  signal(sig: NodeJS.Signals): void;
  /** Resolves with the exit code (or signal name). */
  exited(): Promise<number | string>;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const proc of running) proc.kill('SIGKILL');
});

export interface RunOptions {
  env?: NodeJS.ProcessEnv | undefined;
  cwd?: string;
  /** Wait for this many booted workers (default: wait for "Booted"). */
  waitReady?: boolean;
  /** Run as this user and group (runCli only), with no supplementary groups. */
  user?: { uid: number; gid: number };
}

/** Runs the CLI to completion: exit code and output. */
export async function runCli(args: string[], options: RunOptions = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [CLI, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...cleanEnv(), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.user ? { uid: options.user.uid, gid: options.user.gid } : {}),
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  // A command expected to finish must not outlive its test, even when it wrongly serves.
  const limit = setTimeout(() => proc.kill('SIGKILL'), 20000);
  const [code] = (await once(proc, 'exit')) as [number];
  clearTimeout(limit);
  return { code, stdout, stderr };
}

/** The environment without TSGUNICORN_* settings that would leak into tests. */
export function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TSGUNICORN_') && k !== 'NOTIFY_SOCKET'));
}

export async function startServer(args: string[], options: RunOptions = {}): Promise<Running> {
  const hasBind = args.some((a) => a === '-b' || a === '--bind' || a.startsWith('--bind=') || a === '-c' || a === '--config');
  const fullArgs = hasBind ? args : ['-b', '127.0.0.1:0', ...args];
  const proc = spawn(process.execPath, [CLI, ...fullArgs], {
    cwd: options.cwd ?? ROOT,
    env: { ...cleanEnv(), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(proc);
  let out = '';
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
  const onData = (chunk: Buffer) => {
    out += chunk.toString();
    for (const waiter of [...waiters]) {
      const line = out.split('\n').find((l) => waiter.pattern.test(l));
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  const exit = new Promise<number | string>((resolve) =>
    proc.once('exit', (code, signal) => {
      running.delete(proc);
      resolve(code ?? signal ?? -1);
    }),
  );

  const waitFor = (pattern: RegExp, timeoutMs = 15000): Promise<string> => {
    const line = out.split('\n').find((l) => pattern.test(l));
    if (line !== undefined) return Promise.resolve(line);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}; output:\n${out}`)), timeoutMs);
      waiters.push({
        pattern,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
      void exit.then((code) => {
        clearTimeout(timer);
        reject(new Error(`server exited (${code}) before ${pattern}; output:\n${out}`));
      });
    });
  };

  let port = 0;
  if (options.waitReady !== false) {
    try {
      const listening = await waitFor(/Listening at: https?:\/\/[^ ]+:(\d+)/);
      port = Number(/:(\d+) \(/.exec(listening)?.[1] ?? /:(\d+)\s*$/.exec(listening)?.[1]);
      await waitFor(/Booted \d+ worker/);
    } catch (err) {
      // No test holds a server that did not start: it must not outlive the test
      // (the test runner may end without running exit handlers).
      proc.kill('SIGKILL');
      throw err;
    }
  }
  return {
    proc,
    port,
    url: `http://127.0.0.1:${port}`,
    output: () => out,
    waitFor,
    signal: (sig) => proc.kill(sig),
    exited: () => exit,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
        await exit;
        clearTimeout(timer);
      }
    },
  };
}

/** The pids of a server's worker processes, from its process title. */
export async function workerPids(masterPid: number): Promise<number[]> {
  const { readdirSync, readFileSync } = await import('node:fs');
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === masterPid) pids.push(Number(entry));
    } catch {
      // The process went away while listing.
    }
  }
  return pids;
}

/** A `start` for one test file: every server it starts is stopped after each test. */
export function serversStoppedAfterEach(): (...args: Parameters<typeof startServer>) => Promise<Running> {
  const servers: Running[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });
  return async (...args) => {
    const server = await startServer(...args);
    servers.push(server);
    return server;
  };
}
