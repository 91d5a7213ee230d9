// Running the CLI as an operator would, for the operator-error tests: to its end
// (or stopped when it starts serving by mistake), and reading what they see.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLI, cleanEnv } from './tsgunicorn.js';

/** A scratch directory that an unprivileged user can enter too. */
export function scratch(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-operator-'));
  chmodSync(dir, 0o755);
  return dir;
}

/** The lines an operator reads: every line of the output after the startup banner. */
export const errorText = (output: string) =>
  output
    .split('\n')
    .filter((l) => l !== '' && !/\[INFO\] (Starting tsgunicorn|Listening at|Booting worker|Shutting down)/.test(l))
    .join('\n');

export const STACK_FRAME = /^\s+at .*(\(|:\d+:\d+)/m;

// Root reads any file whatever its mode and binds any port, so the cases about
// permissions run the CLI as the unprivileged user nobody (setpriv, util-linux) when the tests run as root.
export const asRoot = process.getuid?.() === 0;

export interface OperatorRun {
  code: number | string;
  output: string;
}

/** Runs the CLI to its end, or stops it after `timeoutMs`: a server that starts by mistake must not hang the test. */
export async function runAsOperator(
  args: string[],
  options: { unprivileged?: boolean | undefined; timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<OperatorRun> {
  const [command, argv] =
    options.unprivileged && asRoot
      ? ['setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, ...args]]
      : [process.execPath, [CLI, ...args]];
  const proc = spawn(command, argv, {
    cwd: options.cwd ?? os.tmpdir(),
    env: { ...cleanEnv(), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout.on('data', (d) => (output += d));
  proc.stderr.on('data', (d) => (output += d));
  const timer = setTimeout(() => proc.kill('SIGTERM'), options.timeoutMs ?? 15000);
  const [code, signal] = (await once(proc, 'exit')) as [number | null, string | null];
  clearTimeout(timer);
  return { code: code ?? signal ?? -1, output };
}
