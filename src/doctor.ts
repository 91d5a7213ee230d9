// `tsgunicorn doctor`: checks this machine against the hardware minimums the
// package is supported on (2 CPU cores, 4 GB RAM, 20 GB disk, Ubuntu 22.04).
// Everything is read from files (and one statfs) whose location can be changed,
// so tests can feed it any machine. An input that cannot be read is shown in the
// table and counts as unmet: the check never throws.
import { readFileSync, statfsSync } from 'node:fs';
import path from 'node:path';

/** The size of a filesystem as statfs(2) gives it: total blocks of bsize bytes. */
export interface FsSize {
  blocks: number;
  bsize: number;
}

export interface DoctorPaths {
  /** Where /proc is (cpuinfo, meminfo). */
  procDir: string;
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
}

const defaults: DoctorPaths = {
  procDir: '/proc',
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
  const cpus = text.split('\n').filter((l) => /^processor\s*:/.test(l)).length;
  return { ...row, found: String(cpus), status: cpus >= MIN_CPUS ? 'ok' : 'unmet' };
}

function checkMemory(p: DoctorPaths): DoctorRow {
  const row = { check: 'Memory', required: '≥ 4 GB' };
  const file = path.join(p.procDir, 'meminfo');
  const text = readOrWhy(file);
  if (typeof text !== 'string') return { ...row, found: text.why, status: 'unmet' };
  const m = /^MemTotal:\s*(\d+)\s*kB$/m.exec(text);
  if (!m) return { ...row, found: `no MemTotal in ${file}`, status: 'unmet' };
  const bytes = Number(m[1]) * 1024;
  return { ...row, found: `${(bytes / GiB).toFixed(1)} GiB`, status: bytes >= MIN_MEMORY_BYTES ? 'ok' : 'unmet' };
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
function checkOs(p: DoctorPaths): DoctorRow {
  const row = { check: 'OS', required: SUPPORTED_OS.name };
  const text = readOrWhy(p.osRelease);
  if (typeof text !== 'string') return { ...row, found: text.why, status: 'note' };
  const fields = parseOsRelease(text);
  const found = fields.PRETTY_NAME ?? [fields.NAME ?? fields.ID ?? 'unknown', fields.VERSION_ID].filter(Boolean).join(' ');
  const supported = fields.ID === SUPPORTED_OS.id && fields.VERSION_ID === SUPPORTED_OS.versionId;
  return { ...row, found, status: supported ? 'ok' : 'note' };
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
  return lines.map((l) => l.map((cell, i) => (i < widths.length ? cell.padEnd(widths[i]!) : cell)).join('  ')).join('\n') + '\n';
}
