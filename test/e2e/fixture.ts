// What the tsgunicorn e2e tests share: a freshly booted container per describe
// block with dist/tsgunicorn.deb installed, and helpers that fail with the
// unit's status and journal so a failure says what the server did.
import { afterAll, beforeAll, inject } from 'vitest';
import { HOST_ARCH, boot, waitFor, type ExecResult, type Machine, type Suite } from './harness.js';
import { attempt } from '../helpers/http.js';

export const EXAMPLE_APP = '/usr/share/tsgunicorn/examples/hello/app.ts';
export const EXAMPLE_GREETING = 'Hello, tsgunicorn!';

/**
 * Boots `suite` with tsgunicorn installed before the block's tests and powers it
 * off after them. The returned getter gives the machine inside a test.
 */
export function useMachine(suite: Suite, opts: { withDeb?: boolean } = {}): () => Machine {
  let machine: Machine | undefined;
  beforeAll(async () => {
    let deb: string | undefined;
    if (opts.withDeb ?? true) {
      const error = inject('debError');
      if (error) throw new Error(`dist/tsgunicorn.deb could not be built, so tsgunicorn cannot be installed in the container:\n${error}`);
      deb = inject('deb');
    }
    machine = await boot(suite, deb ? { deb } : {});
  });
  afterAll(async () => {
    await machine?.stop();
  });
  return () => {
    if (!machine) throw new Error(`the ${suite} container did not boot (see the beforeAll error)`);
    return machine;
  };
}

/** Copies the packaged example app to /srv/NAME/app.ts, where `tsgunicorn --instance NAME` looks. */
export async function installExampleApp(m: Machine, name = 'myapp'): Promise<void> {
  await m.run(['install', '-D', '-m', '0644', EXAMPLE_APP, `/srv/${name}/app.ts`]);
}

/** `systemctl start`, failing with the unit's status and journal if it does not start. */
export async function start(m: Machine, unit: string): Promise<void> {
  const r = await m.systemctl('start', unit);
  if (r.code !== 0)
    throw new Error(`[${m.suite}] systemctl start ${unit} exited ${r.code}: ${r.stderr.trim()}\n${await diagnose(m, unit)}`);
}

/** A command's time limit on `m`: several times longer where its programs run emulated (qemu-user). */
export const emulated = (m: Machine, ms: number): number => (m.arch === HOST_ARCH ? ms : 5 * ms);

// What the listing leaves out, as piuparts does: other mounts (-xdev: /proc,
// /sys, /dev, /run, /tmp), and the records that any install and any boot
// change: dpkg's database, apt's state, caches and logs of these very
// operations, the journal, and systemd's own state (random seed, clock).
const CHURN = ['/var/lib/dpkg', '/var/lib/apt', '/var/cache/apt', '/var/log/apt', '/var/log/journal', '/var/lib/systemd'];

/**
 * apt-get, non-interactive. Offline as it is used here (no apt-get update; the
 * install tests check that it installs the package alone, so fetches nothing).
 */
export function aptGet(m: Machine, ...args: string[]): Promise<ExecResult> {
  return m.exec(['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', '-y', ...args], { timeoutMs: emulated(m, 180_000) });
}

/** Every file on the root filesystem but the churn, one `path type mode owner:group` line each, sorted. */
export async function listFiles(m: Machine): Promise<string[]> {
  const prune = CHURN.flatMap((p, i) => (i ? ['-o', '-path', p] : ['-path', p]));
  const out = await m.run(['find', '/', '-xdev', '(', ...prune, ')', '-prune', '-o', '-printf', '%p %y %m %u:%g\\n'], {
    timeoutMs: emulated(m, 60_000),
  });
  return out
    .split('\n')
    .filter(Boolean)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The unit's status and the last lines of its journal, for failure messages. */
export async function diagnose(m: Machine, unit: string): Promise<string> {
  const status = await m.systemctl('status', '--lines=0', unit);
  const journal = await m.journal(unit, '--lines=60', '-o', 'short-monotonic');
  return `--- systemctl status ${unit}\n${status.stdout}${status.stderr}\n--- journalctl -u ${unit}\n${journal.stdout}${journal.stderr}`;
}

/** A unit property, as `systemctl show -p NAME --value` prints it. */
export async function property(m: Machine, unit: string, name: string): Promise<string> {
  return (await m.run(['systemctl', 'show', '-p', name, '--value', unit])).trim();
}

/** Waits until `url` answers 200, failing with the unit's diagnosis. */
export async function waitServing(m: Machine, unit: string, url: string, timeoutMs: number): Promise<void> {
  let last = '';
  await waitFor(
    async () => {
      const r = await attempt(url, { timeoutMs: 2_000 });
      if (!r.ok) last = r.reason;
      return r.ok ? true : undefined;
    },
    timeoutMs,
    () => `[${m.suite}] ${url} did not answer 200 within ${timeoutMs} ms (last: ${last})`,
    200,
  ).catch(async (err: Error) => {
    throw new Error(`${err.message}\n${await diagnose(m, unit)}`);
  });
}

/** The journal entries of `journalctl ARGS -o json`, fields decoded to strings. */
export async function journalEntries(m: Machine, unit: string, ...args: string[]): Promise<Record<string, string>[]> {
  const r = await m.journal(unit, '-o', 'json', ...args);
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const raw = JSON.parse(l) as Record<string, unknown>;
      return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, fieldText(v)]));
    });
}

// journalctl prints a value that is not plain text as an array of bytes, and a
// field that occurs more than once as an array of its values.
function fieldText(v: unknown): string {
  if (!Array.isArray(v)) return String(v);
  if (v.every((x) => typeof x === 'number')) return Buffer.from(v).toString('utf8');
  return v.map(fieldText).join('\n');
}

declare module 'vitest' {
  export interface ProvidedContext {
    /** Path of the .deb the global setup built or found up to date. */
    deb: string;
    /** Why the .deb could not be built; empty when it was. */
    debError: string;
    /** A build of the same tree with a newer version, for the upgrade test. */
    upgradeDeb: string;
    /** What `tsgunicorn --version` prints in upgradeDeb's package. */
    upgradeProgramVersion: string;
    /** Why upgradeDeb could not be built; empty when it was. */
    upgradeDebError: string;
  }
}

/** The PIDs of every process of a unit (its cgroup), as the container sees them. */
export async function unitPids(m: Machine, unit: string): Promise<number[]> {
  const cgroup = await property(m, unit, 'ControlGroup');
  const out = await m.run([
    'sh',
    '-c',
    'cat /sys/fs/cgroup/unified"$1"/cgroup.procs 2>/dev/null || cat /sys/fs/cgroup"$1"/cgroup.procs',
    'sh',
    cgroup,
  ]);
  return out.split('\n').filter(Boolean).map(Number);
}

/**
 * The TCP ports any process of the unit listens on: its socket inodes matched
 * against the LISTEN entries of /proc/net/tcp and tcp6.
 */
export async function listeningPorts(m: Machine, unit: string): Promise<number[]> {
  const pids = await unitPids(m, unit);
  // Inode 0 (no socket) keeps the inode list non-empty, which the awk program's first-file test needs.
  const script = `{ for p in "$@"; do ls -l /proc/$p/fd 2>/dev/null; done | sed -n 's/.*socket:\\[\\([0-9]*\\)\\].*/\\1/p'; echo 0; } >/tmp/inodes
awk 'NR == FNR { want[$1] = 1; next } $4 == "0A" && ($10 in want) { split($2, a, ":"); print a[2] }' /tmp/inodes /proc/net/tcp /proc/net/tcp6`;
  const out = await m.run(['sh', '-c', script, 'sh', ...pids.map(String)]);
  return [
    ...new Set(
      out
        .split('\n')
        .filter(Boolean)
        .map((hex) => parseInt(hex, 16)),
    ),
  ].sort((a, b) => a - b);
}
