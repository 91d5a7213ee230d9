// Where control sockets live: an instance's in its unit's RuntimeDirectory
// (RuntimeDirectory=tsgunicorn/%i), any other server's where control_socket says.
import path from 'node:path';

export const INSTANCES_RUN_DIR = '/run/tsgunicorn';

export const instanceSocket = (name: string): string => path.join(INSTANCES_RUN_DIR, name, 'control.sock');

/** The socket a server listens on for its control_socket setting, or null when off. */
export function controlSocketPath(setting: string, env: NodeJS.ProcessEnv = process.env): string | null {
  if (setting === 'off') return null;
  if (setting !== 'auto') return path.resolve(setting);
  // systemd (≥ 240) sets RUNTIME_DIRECTORY; with several directories it is a colon-separated list.
  if (env.RUNTIME_DIRECTORY) return path.join(env.RUNTIME_DIRECTORY.split(':')[0]!, 'control.sock');
  if (env.XDG_RUNTIME_DIR) return path.join(env.XDG_RUNTIME_DIR, 'tsgunicorn.sock');
  return null;
}
