// What the settings name on disk, checked before anything is forked: a missing
// directory or a certificate that does not match its key is one line and exit 2
// here, instead of a stack from a worker (or a server running with no log). The
// CLI runs it at start and on every reload (HUP), which such a setting aborts;
// not for --print-config, which shows settings before their directories exist.
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { preloadSearchDirs, resolvePreload } from '../app/preload.js';
import { controlSocketPath } from '../control/paths.js';
import { socketGroupProblem } from '../control/socket-group.js';
import { sandboxHint } from '../systemd/sandbox.js';
import { ConfigError, describeSource, type Source } from './resolve.js';
import type { SettingName, Settings } from './schema.js';

export function checkFiles(settings: Settings, sources: Record<SettingName, Source>): void {
  const where = (name: SettingName) => `${describeSource(sources[name])}: ${name}`;
  // Relative paths are taken from chdir, where the master runs.
  const base = settings.chdir ?? process.cwd();
  const inDirectory = (name: SettingName, file: string | null, what: string) => {
    if (!file || file === '-') return;
    const dir = path.dirname(path.resolve(base, file));
    if (!isDirectory(dir))
      throw new ConfigError(`${where(name)}: ${file}: the directory ${dir} does not exist: create it, or write ${what} elsewhere`);
  };
  inDirectory('pidfile', settings.pidfile, 'the PID file');
  inDirectory('errorlog', settings.errorlog, 'the error log');
  inDirectory('accesslog', settings.accesslog, 'the access log');
  if (settings.control_socket !== 'auto' && settings.control_socket !== 'off')
    inDirectory('control_socket', settings.control_socket, 'the control socket');
  // A log that cannot be written would lose every line: refused here, with what the sandbox allows.
  const writable = (name: SettingName, file: string | null) => {
    if (!file || file === '-') return;
    const full = path.resolve(base, file);
    try {
      accessSync(existsSync(full) ? full : path.dirname(full), constants.W_OK);
    } catch (err) {
      throw new ConfigError(`${where(name)}: ${file} cannot be written (${(err as NodeJS.ErrnoException).code})${sandboxHint(full, err)}`);
    }
  };
  writable('errorlog', settings.errorlog);
  writable('accesslog', settings.accesslog);
  if (settings.hooks) {
    const file = path.resolve(base, settings.hooks);
    if (!isFile(file)) throw new ConfigError(`${where('hooks')}: ${file} does not exist: give the path of the module exporting the hooks`);
  }
  if (settings.certfile && settings.keyfile) checkCertificate(settings, where);
  if (settings.preload.length > 0) {
    const dirs = preloadSearchDirs(settings.app, base);
    for (const specifier of settings.preload) {
      try {
        resolvePreload(specifier, dirs);
      } catch (err) {
        throw new ConfigError(`${describeSource(sources.preload)}: ${(err as Error).message}`);
      }
    }
  }
  const group = settings.control_socket_group;
  const socket = controlSocketPath(settings.control_socket);
  const groupProblem = group !== null && socket !== null ? socketGroupProblem(group, socket) : null;
  if (groupProblem) throw new ConfigError(`${where('control_socket_group')}: ${groupProblem}`);
}

function checkCertificate(settings: Settings, where: (name: SettingName) => string): void {
  const read = (name: 'certfile' | 'keyfile') => {
    try {
      return readFileSync(path.resolve(settings.chdir ?? process.cwd(), settings[name]!));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code;
      throw new ConfigError(`${where(name)}: cannot read ${settings[name]} (${why})`);
    }
  };
  const cert = read('certfile');
  const key = read('keyfile');
  try {
    // Loaded only when HTTPS is configured: node:tls adds to the master's memory.
    process.getBuiltinModule('node:tls').createSecureContext({ cert, key });
  } catch (err) {
    const reason = (err as Error).message.replace(/^error:[0-9A-F]+:[^:]*:[^:]*:/i, '');
    throw new ConfigError(
      `${where('certfile')} ${settings.certfile} and keyfile ${settings.keyfile}: not a usable pair (${reason}): ` +
        'give the PEM certificate and the private key it was issued for',
    );
  }
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}
