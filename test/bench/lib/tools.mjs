// Makes sure the load generator and the Gunicorn + Flask peer are installed,
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

function aptInstall(packages) {
  const apt = ['apt-get', 'install', '-y', '--no-install-recommends', ...packages];
  const [cmd, ...args] = process.getuid?.() === 0 ? apt : ['sudo', '-n', ...apt];
  console.error(`bench: installing ${packages.join(' ')} (${cmd} ${args.join(' ')})`);
  try {
    execFileSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    return true;
  } catch {
    return false;
  }
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
