// `tsgunicorn doctor`: checks this machine against the hardware minimums the
// package is supported on (2 CPU cores, 4 GB RAM, 20 GB disk, Ubuntu 22.04),
// counting what this process may really use: the CPUs of its affinity mask and
// cgroup quota, and the memory of its cgroup limit. Everything is read from
// files (and one statfs and the affinity call) whose location can be changed,
// so tests can feed it any machine. An input that cannot be read is shown in the
// table and counts as unmet: the check never throws.
import { readFileSync, statfsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The size of a filesystem as statfs(2) gives it: total blocks of bsize bytes. */
export interface FsSize {
  blocks: number;
  bsize: number;
}

export interface DoctorPaths {
  /** Where /proc is (cpuinfo, meminfo, self/cgroup). */
  procDir: string;
  /** Where the cgroup filesystem is mounted (v2, or v1 controllers below it). */
  cgroupDir: string;
  /** The CPUs this process may run on (its affinity mask). */
  availableCpus: () => number;
  /** A path on the filesystem that must have room: the one holding /var/lib. */
  statfsPath: string;
  osRelease: string;
  /** Reads a filesystem's size; fs.statfsSync unless a test replaces it. */
  statfs: (path: string) => FsSize;
}

export interface DoctorRow {
  check: string;
  required: string;
  found: string;
  status: 'ok' | 'unmet' | 'note';
  /** What a note means, printed under the table. */
  explain?: string;
}

const defaults: DoctorPaths = {
  procDir: '/proc',
  cgroupDir: '/sys/fs/cgroup',
  availableCpus: () => os.availableParallelism(),
  statfsPath: '/var/lib',
  osRelease: '/etc/os-release',
  statfs: (p) => statfsSync(p),
};

const MIN_CPUS = 2;
const GiB = 1024 ** 3;
// "4 GB RAM": the kernel keeps part of the memory for itself, so a 4 GB machine
// reports a MemTotal somewhat below 4 GiB; 3.5 GiB and up counts as 4 GB.
const MIN_MEMORY_BYTES = 3.5 * GiB;
// Disk sizes are sold in decimal gigabytes.
const MIN_DISK_BYTES = 20e9;
const SUPPORTED_OS = { id: 'ubuntu', versionId: '22.04', name: 'Ubuntu 22.04' };

export function runDoctor(paths: Partial<DoctorPaths> = {}): { rows: DoctorRow[]; ok: boolean } {
  const p: DoctorPaths = { ...defaults, ...paths };
  const rows = [checkCpus(p), checkMemory(p), checkDisk(p), checkOs(p)];
  return { rows, ok: rows.every((r) => r.status !== 'unmet') };
}

function checkCpus(p: DoctorPaths): DoctorRow {
  const row = { check: 'CPU cores', required: `≥ ${MIN_CPUS}` };
  const file = path.join(p.procDir, 'cpuinfo');
  const text = readOrWhy(file);
  if (typeof text !== 'string') return { ...row, found: text.why, status: 'unmet' };
  // One "processor : N" line per logical CPU.
  const machine = text.split('\n').filter((l) => /^processor\s*:/.test(l)).length;
  const limits = [{ cpus: p.availableCpus(), by: 'affinity' }];
  const quota = cpuQuota(p);
  if (quota !== null) limits.push({ cpus: Math.ceil(quota), by: 'cgroup quota' });
  const usable = limits.reduce((a, b) => (b.cpus < a.cpus ? b : a));
  const cpus = Math.min(usable.cpus, machine);
  const found = cpus < machine ? `${cpus} usable (${usable.by}) of ${machine}` : String(machine);
  return { ...row, found, status: cpus >= MIN_CPUS ? 'ok' : 'unmet' };
}

function checkMemory(p: DoctorPaths): DoctorRow {
  const row = { check: 'Memory', required: '≥ 4 GB' };
  const file = path.join(p.procDir, 'meminfo');
  const text = readOrWhy(file);
  if (typeof text !== 'string') return { ...row, found: text.why, status: 'unmet' };
  const m = /^MemTotal:\s*(\d+)\s*kB$/m.exec(text);
  if (!m) return { ...row, found: `no MemTotal in ${file}`, status: 'unmet' };
  const total = Number(m[1]) * 1024;
  // The tightest limit of this cgroup and its ancestors; "max" (v2) or a value
  // beyond the machine's memory (v1's "unlimited") is none.
  const limit = Math.min(
    ...cgroupValues(p, 'memory', 'memory.max', 'memory.limit_in_bytes')
      .filter((v) => /^\d+$/.test(v))
      .map(Number),
  );
  const gib = (bytes: number) => `${(bytes / GiB).toFixed(1)} GiB`;
  const bytes = Math.min(total, limit);
  const found = limit < total ? `${gib(limit)} (cgroup limit) of ${gib(total)}` : gib(total);
  return { ...row, found, status: bytes >= MIN_MEMORY_BYTES ? 'ok' : 'unmet' };
}

/**
 * The directories of this process's cgroup and each ancestor (innermost
 * first), each with the hierarchy it is in: the unified one (v2), or the v1
 * hierarchy of the controller (mounted as cgroupDir/CONTROLLER, e.g. cpu for
 * "cpu,cpuacct").
 */
function cgroupDirs(p: DoctorPaths, controller: string): { dir: string; v2: boolean }[] {
  const text = readOrWhy(path.join(p.procDir, 'self/cgroup'));
  if (typeof text !== 'string') return [];
  const dirs: { dir: string; v2: boolean }[] = [];
  for (const line of text.split('\n')) {
    // "ID:CONTROLLERS:PATH"; v2 is "0::PATH".
    const m = /^\d+:([^:]*):(\/.*)$/.exec(line);
    if (!m) continue;
    const v2 = m[1] === '';
    if (!v2 && !m[1]!.split(',').includes(controller)) continue;
    const base = v2 ? p.cgroupDir : path.join(p.cgroupDir, controller);
    for (let dir = m[2]!; ; dir = path.dirname(dir)) {
      dirs.push({ dir: path.join(base, dir), v2 });
      if (dir === '/') break;
    }
  }
  return dirs;
}

/** The values of the v2 or v1 file of a controller in this cgroup and its ancestors; files that cannot be read are left out. */
function cgroupValues(p: DoctorPaths, controller: string, v2File: string, v1File: string): string[] {
  return cgroupDirs(p, controller)
    .map(({ dir, v2 }) => readOrWhy(path.join(dir, v2 ? v2File : v1File)))
    .filter((v): v is string => typeof v === 'string')
    .map((v) => v.trim());
}

/**
 * The tightest CPU quota of this cgroup and its ancestors, in CPUs, or null for
 * none: v2's cpu.max is "QUOTA PERIOD" (µs) or "max PERIOD"; v1 has
 * cpu.cfs_quota_us (-1 for none) beside cpu.cfs_period_us.
 */
function cpuQuota(p: DoctorPaths): number | null {
  const quotas: number[] = [];
  for (const { dir, v2 } of cgroupDirs(p, 'cpu')) {
    const read = (file: string) => {
      const v = readOrWhy(path.join(dir, file));
      return typeof v === 'string' ? v.trim() : '';
    };
    const [quota, period] = v2 ? read('cpu.max').split(' ') : [read('cpu.cfs_quota_us'), read('cpu.cfs_period_us')];
    if (/^\d+$/.test(quota ?? '') && /^\d+$/.test(period ?? '') && Number(period) > 0) quotas.push(Number(quota) / Number(period));
  }
  return quotas.length ? Math.min(...quotas) : null;
}

function checkDisk(p: DoctorPaths): DoctorRow {
  const row = { check: `Disk (${p.statfsPath})`, required: '≥ 20 GB' };
  let bytes: number;
  try {
    const { blocks, bsize } = p.statfs(p.statfsPath);
    bytes = blocks * bsize;
  } catch (err) {
    return { ...row, found: `cannot statfs ${p.statfsPath}: ${errorCode(err)}`, status: 'unmet' };
  }
  return { ...row, found: `${(bytes / 1e9).toFixed(1)} GB`, status: bytes >= MIN_DISK_BYTES ? 'ok' : 'unmet' };
}

// Another OS is only a note: tsgunicorn runs anywhere systemd and glibc do, the
// package is just tested on Ubuntu 22.04.
const OS_NOTE =
  `not ${SUPPORTED_OS.name}, the OS the minimums are stated for: tsgunicorn runs on it ` +
  '(it needs systemd ≥ 247 and glibc ≥ 2.28), but that combination is not the supported one; this is no failure';
function checkOs(p: DoctorPaths): DoctorRow {
  const row = { check: 'OS', required: SUPPORTED_OS.name };
  const text = readOrWhy(p.osRelease);
  if (typeof text !== 'string') return { ...row, found: text.why, status: 'note' };
  const fields = parseOsRelease(text);
  const found = fields.PRETTY_NAME ?? [fields.NAME ?? fields.ID ?? 'unknown', fields.VERSION_ID].filter(Boolean).join(' ');
  const supported = fields.ID === SUPPORTED_OS.id && fields.VERSION_ID === SUPPORTED_OS.versionId;
  return supported ? { ...row, found, status: 'ok' } : { ...row, found, status: 'note', explain: OS_NOTE };
}

/** os-release(5): KEY=VALUE lines, values optionally quoted, # comments. */
function parseOsRelease(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    fields[m[1]!] = m[2]!.replace(/^(["'])(.*)\1$/, '$2').replace(/\\(["'$`\\])/g, '$1');
  }
  return fields;
}

function readOrWhy(file: string): string | { why: string } {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    return { why: `cannot read ${file}: ${errorCode(err)}` };
  }
}

const errorCode = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? String(err);

export function formatDoctorTable(rows: DoctorRow[]): string {
  const lines = [['CHECK', 'REQUIRED', 'FOUND', 'STATUS'], ...rows.map((r) => [r.check, r.required, r.found, r.status])];
  const widths = [0, 1, 2].map((i) => Math.max(...lines.map((l) => l[i]!.length)));
  const notes = rows.filter((r) => r.explain).map((r) => `${r.status} (${r.check}): ${r.explain}`);
  return (
    [...lines.map((l) => l.map((cell, i) => (i < widths.length ? cell.padEnd(widths[i]!) : cell)).join('  ')), ...notes].join('\n') + '\n'
  );
}
