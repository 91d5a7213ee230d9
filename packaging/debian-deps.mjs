// What the build and the tests need from Debian, got on a fresh machine by the
// commands themselves: missing packages are installed with apt-get when this
// runs as root (once more after apt-get update when the package lists are
// missing or stale); otherwise the command fails with one line naming them.
//
//   node packaging/debian-deps.mjs build-deps [ARCH]   (npm run package [-- --arch ARCH])
//   import { ensureAddons, ensurePrometheusTools } …   (npm test's global setup)
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
/** What building the .deb needs: dpkg-dev, binutils (strip) and, for the native addons, a C++ toolchain, node-gyp's python3 and libsystemd. */
const ADDON_DEPS = ['g++', 'make', 'python3', 'pkg-config', 'libsystemd-dev'];
export const BUILD_DEPS = ['dpkg-dev', 'binutils', ...ADDON_DEPS];

/**
 * What building for another Debian architecture needs besides: Debian's cross
 * compilers, and that architecture's libsystemd-dev (the addons link it) and
 * libstdc++6 (dpkg-shlibdeps reads the bundled runtime's dependencies from the
 * packages of its libraries), installed through multiarch.
 */
function crossBuildDeps(arch) {
  const gnuType = execFileSync('dpkg-architecture', [`-a${arch}`, '-qDEB_HOST_GNU_TYPE'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  })
    .trim()
    .replaceAll('_', '-');
  return [`gcc-${gnuType}`, `g++-${gnuType}`, `libsystemd-dev:${arch}`, `libstdc++6:${arch}`];
}

/** Lets dpkg and apt install packages of the foreign `arch` (multiarch), as root. */
function ensureForeignArch(arch, why) {
  if (execFileSync('dpkg', ['--print-foreign-architectures'], { encoding: 'utf8' }).split('\n').includes(arch)) return;
  if (!isRoot()) throw new Error(`${why} needs dpkg to accept ${arch} packages: run sudo dpkg --add-architecture ${arch}`);
  console.error(`${why}: dpkg --add-architecture ${arch}`);
  execFileSync('dpkg', ['--add-architecture', arch]);
  // apt's lists of that architecture's packages.
  run('apt-get', ['-qq', 'update'], { stdio: 'ignore' });
}

function run(cmd, args, opts = {}) {
  try {
    execFileSync(cmd, args, {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      ...opts,
    });
    return true;
  } catch {
    return false;
  }
}

const isRoot = () => process.getuid?.() === 0;
const hasApt = () => run('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' });
const isInstalled = (pkg) => {
  try {
    return execFileSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).endsWith(
      ' installed',
    );
  } catch {
    return false;
  }
};

/** Runs an apt-get command, and once more after apt-get update (as root) if it fails. */
function aptGet(args, cwd) {
  return (
    run('apt-get', args, { cwd }) || (isRoot() && run('apt-get', ['-qq', 'update'], { stdio: 'ignore' }) && run('apt-get', args, { cwd }))
  );
}

/** Installs the missing ones of Debian's `packages`; throws naming those it could not. */
export function ensurePackages(packages, why) {
  const missing = packages.filter((pkg) => !isInstalled(pkg));
  if (missing.length === 0) return;
  const command = `apt-get install ${missing.join(' ')}`;
  if (!isRoot() || !hasApt()) throw new Error(`${why} needs Debian's ${missing.join(', ')}: run sudo ${command}`);
  console.error(`${why}: ${command}`);
  aptGet(['install', '-y', '-qq', '--no-install-recommends', ...missing]);
  const still = missing.filter((pkg) => !isInstalled(pkg));
  if (still.length) throw new Error(`${why} needs Debian's ${still.join(', ')}, and ${command} failed`);
}

/**
 * A directory holding promtool and prometheus: none when both are on PATH
 * already, else the copies taken from Debian's prometheus package (downloaded,
 * not installed: installing it would start and enable a Prometheus server) in
 * node_modules/.cache. The tests start their own server, on loopback.
 */
export function ensurePrometheusTools() {
  const tools = ['promtool', 'prometheus'];
  if (tools.every((tool) => run('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }))) return null;
  const dir = path.join(root, 'node_modules/.cache/tsgunicorn-tools');
  if (tools.every((tool) => existsSync(path.join(dir, tool)))) return dir;
  const why = 'the Prometheus tests (promtool, prometheus)';
  if (!hasApt()) throw new Error(`${why} need Debian's prometheus package: install it, or put promtool and prometheus on PATH`);
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'tsgunicorn-promtool-'));
  try {
    console.error(`${why}: apt-get download prometheus, for its promtool and prometheus`);
    // As root, apt's download sandbox user could not write to this private directory.
    const sandbox = isRoot() ? ['-o', 'APT::Sandbox::User=root'] : [];
    if (!aptGet(['download', '-qq', ...sandbox, 'prometheus'], scratch)) {
      throw new Error(
        `${why} need promtool and prometheus, and apt-get download prometheus failed: run sudo apt-get install prometheus, or put them on PATH`,
      );
    }
    const deb = readdirSync(scratch).find((f) => f.endsWith('.deb'));
    execFileSync('dpkg-deb', ['-x', path.join(scratch, deb), path.join(scratch, 'tree')]);
    mkdirSync(dir, { recursive: true });
    for (const tool of tools) {
      renameSync(path.join(scratch, 'tree/usr/bin', tool), path.join(dir, tool));
      chmodSync(path.join(dir, tool), 0o755);
    }
    return dir;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * The native addons of the project's node_modules and native/, which npm ci's
 * postinstall builds only where their build dependencies were already installed.
 */
export function ensureAddons() {
  const built = ['node_modules/sd-notify/build/Release/notify.node', 'native/watchdog/build/Release/watchdog.node'];
  if (built.every((file) => existsSync(path.join(root, file)))) return;
  ensurePackages(ADDON_DEPS, 'the systemd tests (the native addons)');
  execFileSync(process.execPath, [path.join(root, 'packaging/build-addons.mjs')], { stdio: 'inherit' });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [command, arch] = process.argv.slice(2);
  if (command !== 'build-deps') {
    console.error('usage: node packaging/debian-deps.mjs build-deps [ARCH]');
    process.exit(2);
  }
  const why = arch ? `npm run package -- --arch ${arch}` : 'npm run package';
  try {
    ensurePackages(BUILD_DEPS, why);
    const native = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
    if (arch && arch !== native) {
      ensureForeignArch(arch, why);
      ensurePackages(crossBuildDeps(arch), why);
    }
  } catch (err) {
    console.error(`debian-deps: ${err.message}`);
    process.exit(1);
  }
}
