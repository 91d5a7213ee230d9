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
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Debian releases with the systemd versions the units must work on: 252 and 247 (older than Ubuntu 22.04's 249). */
export const SUITES = ['bookworm', 'bullseye'] as const;
export type Suite = (typeof SUITES)[number];

/** Debian's names of the architectures the .deb is built for; another one than the host's runs emulated (qemu-user). */
export type Arch = 'amd64' | 'arm64';
export const HOST_ARCH: Arch = process.arch === 'arm64' ? 'arm64' : 'amd64';
/**
 * The binfmt_misc entry through which the kernel runs arm64 programs on another
 * host: qemu-user-static's, matching the ELF header (e_ident, e_type, e_machine
 * EM_AARCH64), with its F flag (the kernel opens the interpreter once, so it
 * runs inside containers that do not have it).
 */
const ARM64_BINFMT = {
  name: 'qemu-aarch64',
  magic: '\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00',
  mask: '\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff',
  interpreter: '/usr/bin/qemu-aarch64-static',
};

// What the tests need inside: systemd as PID 1, journald, dbus for systemctl,
// adduser for the .deb's system user, procps for kill and pgrep, logrotate for the
// package's logrotate config.
const PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'libsystemd0', 'adduser', 'procps', 'logrotate'];
// Changing the recipe (packages or the tweaks in buildRootfs) invalidates cached rootfs.
const RECIPE = `v1 minbase ${PACKAGES.join(',')}`;
const RECIPE_FILE = '.tsgunicorn-e2e-recipe';
// Boot services that load systemd credentials (252's sysusers and tmpfiles):
// under qemu-user systemd fails to set credentials up ("Failed to set up
// credentials: Invalid argument", and the boot ends degraded); no test uses
// credentials, so in an emulated rootfs these units load none.
const CREDENTIAL_UNITS = ['systemd-sysusers.service', 'systemd-tmpfiles-setup.service', 'systemd-tmpfiles-setup-dev.service'];

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
  arch: Arch;
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

/**
 * Lets the kernel run `arch`'s programs, for a container of another
 * architecture than the host's: mounts binfmt_misc where it is not, and
 * registers qemu-user-static's interpreter unless an entry is there. Returns
 * why not where the kernel refuses; throws when qemu-user-static is missing.
 */
export function enableEmulation(arch: Arch): string | undefined {
  if (arch === HOST_ARCH) return undefined;
  if (arch !== 'arm64') throw new Error(`the e2e tests emulate arm64 only, not ${arch}`);
  const dir = '/proc/sys/fs/binfmt_misc';
  if (!existsSync(path.join(dir, 'register'))) {
    const mount = spawnSync('mount', ['-t', 'binfmt_misc', 'binfmt_misc', dir], { encoding: 'utf8' });
    if (mount.status !== 0) return `the kernel refuses to mount binfmt_misc on ${dir}: ${mount.stderr.trim()}`;
  }
  const { name, magic, mask, interpreter } = ARM64_BINFMT;
  const entry = path.join(dir, name);
  if (existsSync(entry)) {
    const state = readFileSync(entry, 'utf8');
    if (!/^flags: \S*F/m.test(state))
      throw new Error(`${entry} has no F flag, so containers cannot reach its interpreter: register qemu-user-static's with it`);
    if (!state.startsWith('enabled')) writeFileSync(entry, '1');
    return undefined;
  }
  if (!existsSync(interpreter))
    throw new Error(`emulating ${arch} needs ${interpreter}: apt-get install -y qemu-user-static binfmt-support`);
  try {
    writeFileSync(path.join(dir, 'register'), `:${name}:M::${magic}:${mask}:${interpreter}:F`);
  } catch (err) {
    return `the kernel refuses to register ${interpreter} with binfmt_misc: ${(err as Error).message}`;
  }
  return undefined;
}

/** The name of a rootfs and its containers: the suite, and the architecture when it is not the host's. */
const rootfsName = (suite: Suite, arch: Arch): string => (arch === HOST_ARCH ? suite : `${suite}-${arch}`);

/** The cached rootfs of a suite, built with debootstrap on first use (1–2 minutes; under emulation about 6). */
export async function ensureRootfs(suite: Suite, arch: Arch = HOST_ARCH): Promise<string> {
  const dir = path.join(cacheDir(), rootfsName(suite, arch));
  const rootfs = path.join(dir, 'rootfs');
  const recipeFile = path.join(rootfs, RECIPE_FILE);
  const recipe = arch === HOST_ARCH ? RECIPE : `${RECIPE} ${arch} ${CREDENTIAL_UNITS.join(',')}`;
  if (existsSync(recipeFile) && readFileSync(recipeFile, 'utf8') === recipe) return rootfs;
  mkdirSync(dir, { recursive: true });
  const building = path.join(dir, `rootfs.building-${process.pid}`);
  rmSync(building, { recursive: true, force: true });
  await buildRootfs(suite, arch, building, recipe);
  if (existsSync(recipeFile) && readFileSync(recipeFile, 'utf8') === recipe) {
    // Another test run finished the same build meanwhile, and may be using it.
    rmSync(building, { recursive: true, force: true });
    return rootfs;
  }
  rmSync(rootfs, { recursive: true, force: true });
  renameSync(building, rootfs);
  return rootfs;
}

async function buildRootfs(suite: Suite, arch: Arch, target: string, recipe: string): Promise<void> {
  // Another architecture's second stage runs its programs through binfmt_misc (enableEmulation).
  const args = [`--arch=${arch}`, '--variant=minbase', `--include=${PACKAGES.join(',')}`, suite, target];
  // Without a mirror argument debootstrap uses Debian's default one.
  if (process.env.E2E_MIRROR) args.push(process.env.E2E_MIRROR);
  const result = await runHost('debootstrap', args, 15 * 60_000);
  if (result.code !== 0) {
    throw new Error(`debootstrap ${suite} ${arch} failed (exit ${result.code}):\n${tail(result.stdout + result.stderr, 40)}`);
  }
  if (arch !== HOST_ARCH) {
    for (const unit of CREDENTIAL_UNITS) {
      mkdirSync(path.join(target, 'etc/systemd/system', `${unit}.d`), { recursive: true });
      writeFileSync(path.join(target, 'etc/systemd/system', `${unit}.d`, 'no-credentials.conf'), '[Service]\nLoadCredential=\n');
    }
  }
  // No login prompt on the console: the container is driven through nsenter only.
  for (const unit of ['console-getty.service', 'getty@.service']) {
    spawnSync('ln', ['-sf', '/dev/null', path.join(target, 'etc/systemd/system', unit)]);
  }
  rmSync(path.join(target, 'var/cache/apt/archives'), { recursive: true, force: true });
  mkdirSync(path.join(target, 'var/cache/apt/archives/partial'), { recursive: true });
  writeFileSync(path.join(target, RECIPE_FILE), recipe);
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
  /** The machine name, for several containers at once (default tsg-SUITE, tsg-SUITE-ARCH for an emulated one). */
  name?: string;
  /** The container's architecture (default the host's; another one runs emulated, see enableEmulation). */
  arch?: Arch;
}

/**
 * Boots a fresh container: an overlay of the cached rootfs (or, where overlayfs
 * is unavailable, a copy), so nothing a test does survives it.
 */
export async function boot(suite: Suite, opts: BootOptions = {}): Promise<Machine> {
  const arch = opts.arch ?? HOST_ARCH;
  const name = rootfsName(suite, arch);
  const lower = await ensureRootfs(suite, arch);
  const runsDir = path.join(cacheDir(), 'runs');
  mkdirSync(runsDir, { recursive: true });
  cleanStaleRuns(runsDir);
  const runDir = mkdtempSync(path.join(runsDir, `${name}-${process.pid}-`));
  const root = path.join(runDir, 'root');
  const overlaid = mountOverlay(lower, runDir, root);
  if (!overlaid) {
    rmSync(root, { recursive: true, force: true });
    const copy = spawnSync('cp', ['-a', '--reflink=auto', lower, root]);
    if (copy.status !== 0) throw new Error(`cannot copy ${lower}: ${String(copy.stderr)}`);
  }
  // Units with no job in a throwaway container that failed now and then as
  // several containers booted at once, leaving the container degraded:
  // systemd-remount-fs, as the root is the run's overlay or copy with nothing of
  // /etc/fstab to apply, and systemd-update-utmp (with its runlevel record,
  // which requires it), whose login records nothing reads. Masked in the run's
  // root only, so the cached rootfs stays as debootstrap made it.
  for (const unit of ['systemd-remount-fs', 'systemd-update-utmp', 'systemd-update-utmp-runlevel']) {
    symlinkSync('/dev/null', path.join(root, 'etc/systemd/system', `${unit}.service`));
  }
  if (opts.deb) copyFileSync(opts.deb, path.join(root, 'root/tsgunicorn.deb'));

  let consoleText = '';
  const nspawn = spawn(
    'systemd-nspawn',
    // --register=no and --keep-unit: the host has no systemd to register with.
    ['--boot', '--register=no', '--keep-unit', `--machine=${opts.name ?? `tsg-${name}`}`, '--console=pipe', '-D', root],
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
      arch,
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
  // Emulated, every program runs several times slower.
  const timeoutMs = machine.arch === HOST_ARCH ? 60_000 : 300_000;
  const deadline = Date.now() + timeoutMs;
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
    `[${machine.suite}] the container did not finish booting in ${timeoutMs / 1000} s (state: ${last?.stdout.trim()} ${last?.stderr.trim()}):\n${tail(machine.console(), 30)}`,
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
    const owner = Number(/^[a-z0-9-]+?-(\d+)-/.exec(name)?.[1]);
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
