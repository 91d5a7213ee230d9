// Makes sure the load generators (wrk, and h2load for HTTP/2) and the Gunicorn + Flask peer are installed,
// installing Debian's packages with apt-get when they are missing.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

function commandPath(name) {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

function apt(args) {
  const command = ['apt-get', ...args];
  const [cmd, ...rest] = process.getuid?.() === 0 ? command : ['sudo', '-n', ...command];
  console.error(`bench: ${cmd} ${rest.join(' ')}`);
  try {
    execFileSync(cmd, rest, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    return true;
  } catch {
    return false;
  }
}

/** apt-get install; on a machine whose package lists are missing or stale, once more after apt-get update. */
function aptInstall(packages) {
  const install = ['install', '-y', '--no-install-recommends', ...packages];
  return apt(install) || (apt(['update']) && apt(install));
}

function isInstalled(pkg) {
  try {
    return execFileSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).endsWith(
      ' installed',
    );
  } catch {
    return false;
  }
}

/** Installs those of Debian's `packages` that are missing; returns the ones still missing after that. */
export function ensurePackages(packages) {
  const missing = packages.filter((pkg) => !isInstalled(pkg));
  if (missing.length > 0) aptInstall(missing);
  return missing.filter((pkg) => !isInstalled(pkg));
}

/** The interpreter named on a script's #! line (Debian's gunicorn runs /usr/bin/python3). */
function shebangInterpreter(path) {
  const first = readFileSync(path, 'utf8').split('\n', 1)[0];
  const words = first.replace(/^#!\s*/, '').split(/\s+/);
  return words[0].endsWith('/env') ? words[1] : words[0];
}

function canImportFlask(python) {
  try {
    execFileSync(python, ['-c', 'import flask'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Returns { gunicorn } — the gunicorn command path, or a reason string in
 * gunicornMissing when the Flask peer cannot run. Throws when wrk is missing
 * and cannot be installed, since nothing can be measured without it.
 */
export function ensureTools() {
  if (!commandPath('wrk') && !(aptInstall(['wrk']) && commandPath('wrk'))) {
    throw new Error('wrk is not installed and apt-get install wrk failed');
  }
  if (!commandPath('h2load') && !(aptInstall(['nghttp2-client']) && commandPath('h2load'))) {
    throw new Error('h2load is not installed and apt-get install nghttp2-client failed');
  }
  let gunicorn = commandPath('gunicorn');
  if (!gunicorn) {
    aptInstall(['gunicorn', 'python3-flask']);
    gunicorn = commandPath('gunicorn');
  }
  if (!gunicorn) return { gunicornMissing: 'gunicorn not installed (apt-get install gunicorn failed)' };
  const python = shebangInterpreter(gunicorn);
  if (!canImportFlask(python) && !(aptInstall(['python3-flask']) && canImportFlask(python))) {
    return { gunicornMissing: `flask not importable by ${python} (apt-get install python3-flask failed)` };
  }
  return { gunicorn };
}
