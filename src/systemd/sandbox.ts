// What the service's sandbox (tsgunicorn@.service: ProtectSystem=strict,
// ProtectHome=yes) does to a path, said where an operation on it fails because
// of it: the error alone (EROFS, EACCES) does not say that the file system is
// fine and only this service is kept out, nor which drop-in lets it in.
import { readFileSync } from 'node:fs';
import path from 'node:path';

// The directories systemd makes writable for the unit (LogsDirectory= etc.), in
// the environment variables it passes them in.
const UNIT_DIRECTORIES = [
  ['LOGS_DIRECTORY', 'logs'],
  ['STATE_DIRECTORY', 'state'],
  ['CACHE_DIRECTORY', 'cache'],
  ['RUNTIME_DIRECTORY', 'runtime'],
] as const;
const HIDDEN = ['/home', '/root', '/run/user'];

/**
 * ": UNIT's sandbox …; to let it in: systemctl edit UNIT, [Service] …" when
 * `err` on `file` comes from the sandbox of the systemd service this process
 * runs in; '' otherwise.
 */
export function sandboxHint(file: string, err: unknown, env: NodeJS.ProcessEnv = process.env, cgroupFile = '/proc/self/cgroup'): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const unit = env.INVOCATION_ID ? serviceUnit(cgroupFile) : null;
  if (!unit) return '';
  const full = path.resolve(file);
  const hidden = HIDDEN.find((dir) => full === dir || full.startsWith(`${dir}/`));
  if (hidden && (code === 'EACCES' || code === 'ENOENT')) {
    return `: ${unit}'s sandbox (ProtectHome=yes) hides ${HIDDEN.join(', ')}; to serve from ${hidden}: systemctl edit ${unit}, add "[Service]" and "ProtectHome=read-only"`;
  }
  // Opening /var/log (or any of it) to the service would let it write every
  // other program's logs: its own log directory is the place for its files.
  const logs = env.LOGS_DIRECTORY?.split(':')[0];
  if (logs && (code === 'EROFS' || code === 'EACCES') && full.startsWith('/var/log/') && !full.startsWith(`${logs}/`)) {
    return (
      `: ${unit}'s sandbox (ProtectSystem=strict) lets it write under /var/log only in its log directory ${logs}` +
      `; write the file there instead: ${path.join(logs, path.basename(full))}`
    );
  }
  if (code === 'EROFS') {
    const writable = UNIT_DIRECTORIES.filter(([name]) => env[name]).map(([name, what]) => `${env[name]} (${what})`);
    const dir = path.dirname(full);
    return (
      `: ${unit}'s sandbox (ProtectSystem=strict) makes the file system read-only for it except ${writable.join(', ') || 'its own directories'}` +
      `; to write to ${dir}: systemctl edit ${unit}, add "[Service]" and "ReadWritePaths=${dir}"`
    );
  }
  return '';
}

/** The service unit of this process, from its cgroup (".../tsgunicorn@myapp.service"), or null. */
export function serviceUnit(cgroupFile = '/proc/self/cgroup'): string | null {
  try {
    for (const line of readFileSync(cgroupFile, 'utf8').split('\n')) {
      const m = /^\d+:[^:]*:.*\/([^/]+\.service)$/.exec(line.trim());
      if (m) return m[1]!;
    }
  } catch {
    // No /proc: no unit to name.
  }
  return null;
}
