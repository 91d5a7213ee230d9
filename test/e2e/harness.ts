// Boots real systemd in a container (systemd-nspawn) on a cached Debian rootfs,
// so the end-to-end tests exercise the units, the generator and the .deb exactly
// as a host would run them. Needs root, debootstrap, systemd-nspawn and nsenter.
import { spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Debian releases with the systemd versions the units must work on: 252 and 247 (older than Ubuntu 22.04's 249). */
export const SUITES = ['bookworm', 'bullseye'] as const;
export type Suite = (typeof SUITES)[number];

// What the tests need inside: systemd as PID 1, journald, dbus for systemctl,
// adduser for the .deb's system user, procps for kill and pgrep, logrotate for the
// package's logrotate config.
const PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'libsystemd0', 'adduser', 'procps', 'logrotate'];
// Changing the recipe (packages or the tweaks in buildRootfs) invalidates cached rootfs.
const RECIPE = `v1 minbase ${PACKAGES.join(',')}`;
const RECIPE_FILE = '.tsgunicorn-e2e-recipe';

const CONTAINER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Kill the command (and fail) after this long. Default 60 s. */
  timeoutMs?: number;
  /** Written to the command's standard input. */
  input?: string;
}

export interface Machine {
  suite: Suite;
  /** Host PID of the container's systemd. */
  pid: number;
  /** Host path of the container's root directory. */
  root: string;
  /** Runs argv (or `sh -c` of a string) inside the container with a clean environment. */
  exec(cmd: string[] | string, opts?: ExecOptions): Promise<ExecResult>;
  /** Like exec, but throws with the command's output when it exits non-zero. */
  run(cmd: string[] | string, opts?: ExecOptions): Promise<string>;
  systemctl(...args: string[]): Promise<ExecResult>;
  journal(unit: string, ...args: string[]): Promise<ExecResult>;
  /** Writes a file inside the container (as root, mode 0644). */
  writeFile(containerPath: string, content: string): Promise<void>;
  /** The container's console output so far, for failure messages. */
  console(): string;
  /** Powers the container off (killing it if it will not stop) and removes its files. Idempotent. */
  stop(): Promise<void>;
}

export function cacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'tsgunicorn-e2e');
}

/** Fails early, with what to install, when the machine cannot run these tests. */
export function checkPrerequisites(): void {
  if (process.getuid?.() !== 0) throw new Error('the e2e tests boot containers with systemd-nspawn and must run as root');
  const missing = ['debootstrap', 'systemd-nspawn', 'nsenter', 'mount', 'umount'].filter(
    (tool) =>
      spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore', env: { PATH: `${CONTAINER_PATH}:${process.env.PATH ?? ''}` } })
        .status !== 0,
  );
  if (missing.length)
    throw new Error(`the e2e tests need ${missing.join(', ')}: apt-get install -y debootstrap systemd-container util-linux`);
}

/** The cached rootfs of a suite, built with debootstrap on first use (1–2 minutes). */
export async function ensureRootfs(suite: Suite): Promise<string> {
  const dir = path.join(cacheDir(), suite);
  const rootfs = path.join(dir, 'rootfs');
  const recipeFile = path.join(rootfs, RECIPE_FILE);
  if (existsSync(recipeFile) && readFileSync(recipeFile, 'utf8') === RECIPE) return rootfs;
  mkdirSync(dir, { recursive: true });
  const building = path.join(dir, `rootfs.building-${process.pid}`);
  rmSync(building, { recursive: true, force: true });
  await buildRootfs(suite, building);
  if (existsSync(recipeFile) && readFileSync(recipeFile, 'utf8') === RECIPE) {
    // Another test run finished the same build meanwhile, and may be using it.
    rmSync(building, { recursive: true, force: true });
    return rootfs;
  }
  rmSync(rootfs, { recursive: true, force: true });
  renameSync(building, rootfs);
  return rootfs;
}

async function buildRootfs(suite: Suite, target: string): Promise<void> {
  const args = ['--variant=minbase', `--include=${PACKAGES.join(',')}`, suite, target];
  // Without a mirror argument debootstrap uses Debian's default one.
  if (process.env.E2E_MIRROR) args.push(process.env.E2E_MIRROR);
  const result = await runHost('debootstrap', args, 15 * 60_000);
  if (result.code !== 0) {
    throw new Error(`debootstrap ${suite} failed (exit ${result.code}):\n${tail(result.stdout + result.stderr, 40)}`);
  }
  // No login prompt on the console: the container is driven through nsenter only.
  for (const unit of ['console-getty.service', 'getty@.service']) {
    spawnSync('ln', ['-sf', '/dev/null', path.join(target, 'etc/systemd/system', unit)]);
  }
  rmSync(path.join(target, 'var/cache/apt/archives'), { recursive: true, force: true });
  mkdirSync(path.join(target, 'var/cache/apt/archives/partial'), { recursive: true });
  writeFileSync(path.join(target, RECIPE_FILE), RECIPE);
}

const live = new Set<{ initPid: number; nspawnPid: number }>();
// If the test process dies without running afterAll, take the containers down
// with it: killing a PID namespace's init kills everything inside.
process.on('exit', () => {
  for (const c of live) {
    for (const pid of [c.initPid, c.nspawnPid]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
});

export interface BootOptions {
  /** A .deb to install (dpkg -i, offline) once the container is up. */
  deb?: string;
  /** The machine name, for several containers at once (default tsg-SUITE). */
  name?: string;
}

/**
 * Boots a fresh container: an overlay of the cached rootfs (or, where overlayfs
 * is unavailable, a copy), so nothing a test does survives it.
 */
export async function boot(suite: Suite, opts: BootOptions = {}): Promise<Machine> {
  const lower = await ensureRootfs(suite);
  const runsDir = path.join(cacheDir(), 'runs');
  mkdirSync(runsDir, { recursive: true });
  cleanStaleRuns(runsDir);
  const runDir = mkdtempSync(path.join(runsDir, `${suite}-${process.pid}-`));
  const root = path.join(runDir, 'root');
  const overlaid = mountOverlay(lower, runDir, root);
  if (!overlaid) {
    rmSync(root, { recursive: true, force: true });
    const copy = spawnSync('cp', ['-a', '--reflink=auto', lower, root]);
    if (copy.status !== 0) throw new Error(`cannot copy ${lower}: ${String(copy.stderr)}`);
  }
  if (opts.deb) copyFileSync(opts.deb, path.join(root, 'root/tsgunicorn.deb'));

  let consoleText = '';
  const nspawn = spawn(
    'systemd-nspawn',
    // --register=no and --keep-unit: the host has no systemd to register with.
    ['--boot', '--register=no', '--keep-unit', `--machine=${opts.name ?? `tsg-${suite}`}`, '--console=pipe', '-D', root],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  nspawn.stdout.on('data', (d: Buffer) => (consoleText += d.toString()));
  nspawn.stderr.on('data', (d: Buffer) => (consoleText += d.toString()));
  const exited = new Promise<void>((resolve) => nspawn.on('exit', () => resolve()));
  const nspawnPid = nspawn.pid!;
  const entry = { initPid: 0, nspawnPid };
  live.add(entry);

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // nspawn turns SIGTERM into a clean poweroff of the container.
    if (nspawn.exitCode === null && nspawn.signalCode === null) {
      process.kill(nspawnPid, 'SIGTERM');
      const done = await Promise.race([exited.then(() => true), sleep(20_000).then(() => false)]);
      if (!done) {
        for (const pid of [entry.initPid, nspawnPid]) {
          try {
            if (pid) process.kill(pid, 'SIGKILL');
          } catch {
            // Already gone.
          }
        }
        await Promise.race([exited, sleep(10_000)]);
      }
    }
    live.delete(entry);
    if (overlaid) unmount(root);
    rmSync(runDir, { recursive: true, force: true });
  };

  try {
    entry.initPid = await waitFor(
      () => containerInit(nspawnPid),
      10_000,
      () => `systemd-nspawn did not start the container:\n${tail(consoleText, 30)}`,
    );
    writeFileSync(path.join(runDir, 'pids'), `${entry.initPid} ${nspawnPid}\n`);
    const exec = (cmd: string[] | string, o: ExecOptions = {}): Promise<ExecResult> => {
      const argv = typeof cmd === 'string' ? ['/bin/sh', '-c', cmd] : cmd;
      // env -i: the host's environment (PATH, HOME, NODE_OPTIONS...) must not leak in.
      return runHost(
        'nsenter',
        [
          '--target',
          String(entry.initPid),
          '--all',
          '--',
          '/usr/bin/env',
          '-i',
          `PATH=${CONTAINER_PATH}`,
          'LANG=C.UTF-8',
          'SYSTEMD_COLORS=0',
          'SYSTEMD_PAGER=',
          ...argv,
        ],
        o.timeoutMs ?? 60_000,
        o.input,
      );
    };
    const run = async (cmd: string[] | string, o: ExecOptions = {}): Promise<string> => {
      const r = await exec(cmd, o);
      if (r.code !== 0)
        throw new Error(`[${suite}] ${describeCmd(cmd)} exited ${r.code}\nstdout: ${tail(r.stdout, 40)}\nstderr: ${tail(r.stderr, 40)}`);
      return r.stdout;
    };
    const machine: Machine = {
      suite,
      pid: entry.initPid,
      root,
      exec,
      run,
      systemctl: (...args) => exec(['systemctl', '--no-pager', ...args]),
      journal: (unit, ...args) => exec(['journalctl', '--no-pager', '-u', unit, ...args]),
      writeFile: async (containerPath, content) => {
        await run(['sh', '-c', 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod 0644 "$1"', 'sh', containerPath], { input: content });
      },
      console: () => consoleText,
      stop,
    };
    await waitForBoot(machine);
    if (opts.deb) {
      await run(['dpkg', '-i', '/root/tsgunicorn.deb'], { timeoutMs: 120_000 });
    }
    return machine;
  } catch (err) {
    await stop();
    throw err;
  }
}

async function waitForBoot(machine: Machine): Promise<void> {
  let last: ExecResult | undefined;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (!existsSync(`/proc/${machine.pid}`))
      throw new Error(`[${machine.suite}] the container stopped while booting:\n${tail(machine.console(), 30)}`);
    last = await machine.exec(['systemctl', 'is-system-running'], { timeoutMs: 10_000 });
    const state = last.stdout.trim();
    if (state === 'running') return;
    if (state === 'degraded') {
      const failed = await machine.exec(['systemctl', '--no-pager', '--failed']);
      throw new Error(`[${machine.suite}] the container booted degraded:\n${failed.stdout}`);
    }
    await sleep(100);
  }
  throw new Error(
    `[${machine.suite}] the container did not finish booting in 60 s (state: ${last?.stdout.trim()} ${last?.stderr.trim()}):\n${tail(machine.console(), 30)}`,
  );
}

function mountOverlay(lower: string, runDir: string, root: string): boolean {
  const upper = path.join(runDir, 'upper');
  const work = path.join(runDir, 'work');
  for (const d of [upper, work, root]) mkdirSync(d, { recursive: true });
  const r = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, root]);
  return r.status === 0;
}

function unmount(root: string): void {
  if (spawnSync('umount', [root]).status !== 0) spawnSync('umount', ['-l', root]);
}

/** Removes what a killed test run left: its container, overlay mount and files, once its process is gone. */
function cleanStaleRuns(runsDir: string): void {
  for (const name of readdirSync(runsDir)) {
    const owner = Number(/^[a-z]+-(\d+)-/.exec(name)?.[1]);
    if (!owner || owner === process.pid || isAlive(owner)) continue;
    const runDir = path.join(runsDir, name);
    const root = path.join(runDir, 'root');
    const pids = existsSync(path.join(runDir, 'pids')) ? readFileSync(path.join(runDir, 'pids'), 'utf8').trim().split(' ').map(Number) : [];
    for (const pid of pids) {
      // Only if the PID still belongs to that container (PIDs get reused).
      if (belongsTo(pid, root)) process.kill(pid, 'SIGKILL');
    }
    if (isMountPoint(root)) unmount(root);
    rmSync(runDir, { recursive: true, force: true });
  }
}

/** Whether pid is that container's init (its root is `root`) or its nspawn (`-D root` on its command line). */
function belongsTo(pid: number, root: string): boolean {
  try {
    return readlinkSync(`/proc/${pid}/root`) === root || readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(root);
  } catch {
    return false;
  }
}

function isMountPoint(dir: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === dir);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The container's init: the child of nspawn that is PID 1 of its own PID
 * namespace (nspawn's short-lived helper children are not).
 */
function containerInit(nspawnPid: number): number | undefined {
  let children: string[];
  try {
    children = readFileSync(`/proc/${nspawnPid}/task/${nspawnPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return undefined;
  }
  for (const child of children) {
    try {
      const nspid = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${child}/status`, 'utf8'))?.[1]?.split(/\s+/);
      if (nspid && nspid.length > 1 && nspid.at(-1) === '1') return Number(child);
    } catch {
      // Exited meanwhile.
    }
  }
  return undefined;
}

/** Runs a host command with a deadline; the whole process group is killed at the deadline. */
export function runHost(cmd: string, args: string[], timeoutMs: number, input?: string): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Already gone.
      }
      reject(
        new Error(`${cmd} ${args.join(' ')}: no result after ${timeoutMs} ms\nstdout: ${tail(stdout, 20)}\nstderr: ${tail(stderr, 20)}`),
      );
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    // A command may exit without reading its input: EPIPE then is no failure of it.
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
}

/** Polls until fn returns a value other than undefined, or throws what describe says. */
export async function waitFor<T>(
  fn: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
  describe: () => string,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) throw new Error(describe());
    await sleep(intervalMs);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function tail(text: string, lines: number): string {
  return text.split('\n').slice(-lines).join('\n');
}

const describeCmd = (cmd: string[] | string): string => (typeof cmd === 'string' ? cmd : cmd.join(' '));
