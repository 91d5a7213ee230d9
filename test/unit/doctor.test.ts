import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatDoctorTable, runDoctor, type DoctorPaths, type DoctorRow } from '../../src/doctor.js';

const GiB = 1024 ** 3;
const cpuinfo = (n: number) =>
  Array.from({ length: n }, (_, i) => `processor\t: ${i}\nvendor_id\t: GenuineIntel\nmodel name\t: Fake CPU\n`).join('\n');
const meminfo = (kB: number) => `MemTotal:       ${kB} kB\nMemFree:         123456 kB\nMemAvailable:    234567 kB\n`;
const ubuntu2204 = 'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nID_LIKE=debian\n';
const debian12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'doctor-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A fake machine: its /proc files and os-release in the temp dir, its disk of `diskBytes`. */
function machine(opts: {
  cpus?: number;
  affinity?: number;
  memKB?: number;
  diskBytes?: number;
  osRelease?: string;
  /** /proc/self/cgroup, and the files under the cgroup mount (path → content). */
  cgroup?: { self: string; files: Record<string, string> };
}): Partial<DoctorPaths> {
  const { cpus = 4, memKB = 8 * 1024 * 1024, diskBytes = 100e9, osRelease = ubuntu2204 } = opts;
  const procDir = path.join(dir, 'proc');
  const cgroupDir = path.join(dir, 'cgroup');
  mkdirSync(path.join(procDir, 'self'), { recursive: true });
  writeFileSync(path.join(procDir, 'cpuinfo'), cpuinfo(cpus));
  writeFileSync(path.join(procDir, 'meminfo'), meminfo(memKB));
  writeFileSync(path.join(procDir, 'self/cgroup'), opts.cgroup?.self ?? '0::/\n');
  for (const [file, content] of Object.entries(opts.cgroup?.files ?? {})) {
    mkdirSync(path.dirname(path.join(cgroupDir, file)), { recursive: true });
    writeFileSync(path.join(cgroupDir, file), content);
  }
  writeFileSync(path.join(dir, 'os-release'), osRelease);
  return {
    procDir,
    cgroupDir,
    availableCpus: () => opts.affinity ?? cpus,
    osRelease: path.join(dir, 'os-release'),
    statfsPath: '/var/lib',
    statfs: () => ({ blocks: diskBytes / 4096, bsize: 4096 }),
  };
}

const row = (rows: DoctorRow[], check: string) => rows.find((r) => r.check.startsWith(check))!;

describe('runDoctor', () => {
  it('passes a machine that meets every minimum on Ubuntu 22.04', () => {
    const { rows, ok } = runDoctor(machine({}));
    expect(ok).toBe(true);
    expect(rows.map((r) => r.status)).toEqual(['ok', 'ok', 'ok', 'ok']);
    expect(row(rows, 'CPU').found).toBe('4');
    expect(row(rows, 'Memory').found).toBe('8.0 GiB');
    expect(row(rows, 'Disk').found).toBe('100.0 GB');
    expect(row(rows, 'OS').found).toBe('Ubuntu 22.04.4 LTS');
  });

  it('accepts exactly the minimums: 2 CPUs, 3.5 GiB MemTotal (a 4 GB machine), 20 GB disk', () => {
    const { rows, ok } = runDoctor(machine({ cpus: 2, memKB: 3.5 * 1024 * 1024, diskBytes: 20e9 }));
    expect(rows.map((r) => r.status)).toEqual(['ok', 'ok', 'ok', 'ok']);
    expect(ok).toBe(true);
  });

  it('flags one CPU core as unmet', () => {
    const { rows, ok } = runDoctor(machine({ cpus: 1 }));
    expect(row(rows, 'CPU')).toMatchObject({ found: '1', status: 'unmet' });
    expect(ok).toBe(false);
  });

  it('counts the CPUs of the affinity mask (taskset -c 0), showing both counts', () => {
    const { rows, ok } = runDoctor(machine({ cpus: 2, affinity: 1 }));
    expect(row(rows, 'CPU')).toMatchObject({ found: '1 usable (affinity) of 2', status: 'unmet' });
    expect(ok).toBe(false);
  });

  it("counts the CPUs of the cgroup's quota (cpu.max), rounded up", () => {
    const { rows } = runDoctor(
      machine({
        cpus: 4,
        cgroup: { self: '0::/system.slice/x.service\n', files: { 'system.slice/x.service/cpu.max': '150000 100000\n' } },
      }),
    );
    expect(row(rows, 'CPU')).toMatchObject({ found: '2 usable (cgroup quota) of 4', status: 'ok' });
  });

  it('counts the CPUs of a cgroup v1 quota (cpu.cfs_quota_us over cpu.cfs_period_us), and none for -1', () => {
    const v1 = (quota: number) =>
      machine({
        cpus: 4,
        cgroup: {
          self: '5:cpu,cpuacct:/lxc/box\n0::/\n',
          files: { 'cpu/lxc/box/cpu.cfs_quota_us': `${quota}\n`, 'cpu/lxc/box/cpu.cfs_period_us': '100000\n' },
        },
      });
    expect(row(runDoctor(v1(50000)).rows, 'CPU')).toMatchObject({ found: '1 usable (cgroup quota) of 4', status: 'unmet' });
    expect(row(runDoctor(v1(-1)).rows, 'CPU')).toMatchObject({ found: '4', status: 'ok' });
  });

  it('counts the memory of the tightest cgroup v2 limit of the process and its ancestors', () => {
    const { rows, ok } = runDoctor(
      machine({
        memKB: 8 * 1024 * 1024,
        cgroup: {
          self: '0::/system.slice/x.service\n',
          files: { 'system.slice/memory.max': `${2 * GiB}\n`, 'system.slice/x.service/memory.max': 'max\n' },
        },
      }),
    );
    expect(row(rows, 'Memory')).toMatchObject({ found: '2.0 GiB (cgroup limit) of 8.0 GiB', status: 'unmet' });
    expect(ok).toBe(false);
  });

  it('counts a cgroup v1 memory limit, and ignores one beyond the machine (unlimited)', () => {
    const v1 = (limit: number) =>
      machine({
        memKB: 8 * 1024 * 1024,
        cgroup: { self: '4:memory:/lxc/box\n0::/\n', files: { 'memory/lxc/box/memory.limit_in_bytes': `${limit}\n` } },
      });
    expect(row(runDoctor(v1(3 * GiB)).rows, 'Memory')).toMatchObject({ found: '3.0 GiB (cgroup limit) of 8.0 GiB', status: 'unmet' });
    expect(row(runDoctor(v1(9223372036854771712)).rows, 'Memory')).toMatchObject({ found: '8.0 GiB', status: 'ok' });
  });

  it('flags less than 3.5 GiB of memory as unmet', () => {
    const { rows, ok } = runDoctor(machine({ memKB: 3.5 * 1024 * 1024 - 1 }));
    expect(row(rows, 'Memory').status).toBe('unmet');
    expect(ok).toBe(false);
  });

  it('flags a filesystem under 20 GB as unmet, sized as blocks × bsize', () => {
    const paths = machine({});
    let asked = '';
    const { rows, ok } = runDoctor({
      ...paths,
      statfsPath: '/some/where',
      statfs: (p) => {
        asked = p;
        return { blocks: 19_999_999, bsize: 1000 };
      },
    });
    expect(asked).toBe('/some/where');
    expect(row(rows, 'Disk')).toMatchObject({ check: 'Disk (/some/where)', found: '20.0 GB', status: 'unmet' });
    expect(ok).toBe(false);
  });

  it('reads the real filesystem with statfs by default', () => {
    const { statfs: _fake, ...paths } = machine({});
    const { rows } = runDoctor({ ...paths, statfsPath: dir });
    expect(row(rows, 'Disk').found).toMatch(/^\d+\.\d GB$/);
  });

  it('notes another OS without failing', () => {
    const { rows, ok } = runDoctor(machine({ osRelease: debian12 }));
    expect(row(rows, 'OS')).toMatchObject({ found: 'Debian GNU/Linux 12 (bookworm)', status: 'note' });
    expect(ok).toBe(true);
    // What the note means is printed under the table.
    expect(formatDoctorTable(rows)).toMatch(
      /\nnote \(OS\): not Ubuntu 22\.04, the OS the minimums are stated for: tsgunicorn runs on it .*no failure\n$/,
    );
  });

  it('notes Ubuntu other than 22.04', () => {
    const { rows, ok } = runDoctor(machine({ osRelease: 'ID=ubuntu\nVERSION_ID="24.04"\nNAME="Ubuntu"\n' }));
    expect(row(rows, 'OS')).toMatchObject({ found: 'Ubuntu 24.04', status: 'note' });
    expect(ok).toBe(true);
  });

  it('reports missing proc files as unmet instead of throwing', () => {
    const paths = machine({});
    rmSync(path.join(paths.procDir!, 'cpuinfo'));
    rmSync(path.join(paths.procDir!, 'meminfo'));
    const { rows, ok } = runDoctor(paths);
    expect(row(rows, 'CPU')).toMatchObject({ status: 'unmet' });
    expect(row(rows, 'CPU').found).toMatch(/cannot read .*cpuinfo: ENOENT/);
    expect(row(rows, 'Memory').found).toMatch(/cannot read .*meminfo: ENOENT/);
    expect(row(rows, 'Memory').status).toBe('unmet');
    expect(ok).toBe(false);
  });

  it('reports a meminfo without MemTotal as unmet', () => {
    const paths = machine({});
    writeFileSync(path.join(paths.procDir!, 'meminfo'), 'MemFree: 1 kB\n');
    const { rows } = runDoctor(paths);
    expect(row(rows, 'Memory')).toMatchObject({ status: 'unmet' });
    expect(row(rows, 'Memory').found).toMatch(/no MemTotal/);
  });

  it('reports a failing statfs as unmet', () => {
    const { statfs: _real, ...paths } = machine({});
    const { rows, ok } = runDoctor({ ...paths, statfsPath: path.join(dir, 'nope') });
    expect(row(rows, 'Disk').found).toMatch(/cannot statfs .*nope: ENOENT/);
    expect(row(rows, 'Disk').status).toBe('unmet');
    expect(ok).toBe(false);
  });

  it('notes a missing os-release without failing', () => {
    const { rows, ok } = runDoctor({ ...machine({}), osRelease: path.join(dir, 'missing') });
    expect(row(rows, 'OS').status).toBe('note');
    expect(row(rows, 'OS').found).toMatch(/cannot read .*missing: ENOENT/);
    expect(ok).toBe(true);
  });
});

describe('formatDoctorTable', () => {
  it('aligns check, required, found and status in columns under a header', () => {
    const text = formatDoctorTable([
      { check: 'CPU cores', required: '≥ 2', found: '1', status: 'unmet' },
      { check: 'OS', required: 'Ubuntu 22.04', found: 'Debian GNU/Linux 12', status: 'note' },
    ]);
    expect(text).toBe(
      [
        'CHECK      REQUIRED      FOUND                STATUS',
        'CPU cores  ≥ 2           1                    unmet',
        'OS         Ubuntu 22.04  Debian GNU/Linux 12  note',
        '',
      ].join('\n'),
    );
  });
});
