// The master's listening sockets, and what the workers inherit with them: the
// sockets bound from `bind` or received from systemd, and the environment that
// names the port they are served on.
import type { Logger } from '../logging/logger.js';
import type { ResolvedSettings } from '../settings/resolve.js';
import type { Settings } from '../settings/schema.js';
import { bindAddresses, inheritSocket, type ListenSocket } from '../sockets.js';
import { bindDisagreement } from '../systemd/bind-check.js';
import type { InheritedSocket } from '../systemd/listen-fds.js';
import { systemdChildEnv } from '../systemd/notify.js';
import { serviceUnit } from '../systemd/sandbox.js';

export async function openSockets(settings: Settings, inherited: InheritedSocket[]): Promise<ListenSocket[]> {
  const scheme = settings.certfile ? 'https' : 'http';
  if (inherited.length > 0) {
    // Socket activation: systemd's sockets take precedence over `bind`.
    return inherited.map(({ fd, name }) => inheritSocket(fd, `fd ${fd} ${name} from systemd`, scheme));
  }
  return bindAddresses(settings.bind, scheme);
}

/** Says when the config's bind is not where systemd's sockets listen (bind edited, socket unit not restarted). */
export function checkBind(
  { settings, sources }: ResolvedSettings,
  inherited: InheritedSocket[],
  sockets: ListenSocket[],
  logger: Logger,
): void {
  if (inherited.length === 0 || sources.bind.kind !== 'file') return;
  const where = `${sources.bind.file}:${sources.bind.line}`;
  const warning = bindDisagreement(
    settings.bind,
    sockets.map((s) => s.address),
    where,
    serviceUnit(),
  );
  if (warning) logger.warning(warning);
}

export function workerEnv(settings: Settings, sockets: ListenSocket[]): NodeJS.ProcessEnv {
  const env = systemdChildEnv(process.env);
  for (const pair of settings.raw_env) {
    const eq = pair.indexOf('=');
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  // Many apps read PORT (Next.js's server.js, `app.listen(process.env.PORT)`); unless the
  // user set it, it names the port they are really served on.
  const tcp = sockets.find((s) => s.target !== null && 'port' in s.target)?.target;
  if (env.PORT === undefined && tcp && 'port' in tcp) env.PORT = String(tcp.port);
  return env;
}
