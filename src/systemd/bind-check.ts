// Under socket activation the server listens where systemd's sockets are, not
// where `bind` says: the generator turns an instance's bind into the socket
// unit's listeners at daemon-reload, and the socket unit opens them only when
// restarted. These say what is really served, and when the two disagree.
import { spawnSync } from 'node:child_process';
import { address, formatAddress, InvalidValue, type Address } from '../settings/kinds.js';
import type { ResolvedSettings } from '../settings/resolve.js';

const tcpKeys = (addresses: (Address | null)[]): string[] =>
  addresses
    .filter((a): a is Extract<Address, { kind: 'tcp' }> => a?.kind === 'tcp')
    .map((a) => formatAddress({ ...a, host: a.host === 'localhost' ? '127.0.0.1' : a.host }))
    .sort();

/**
 * A warning when `bind` (written at `where`) names other TCP addresses than the
 * sockets systemd passed; null when they agree.
 */
export function bindDisagreement(bind: Address[], passed: (Address | null)[], where: string, service: string | null): string | null {
  const wanted = tcpKeys(bind);
  const have = tcpKeys(passed);
  if (wanted.join() === have.join()) return null;
  const socket = service?.replace(/\.service$/, '.socket');
  // What to run so that the sockets follow bind.
  const apply = socket
    ? `sudo systemctl daemon-reload && sudo systemctl restart ${socket} ${service}`
    : 'restart the socket unit that passes them';
  return `bind = ${wanted.join(', ')} (${where}) is not where the sockets from ${socket ?? 'systemd'} listen (${have.join(', ') || 'no TCP address'}): serving on those; to apply bind: ${apply}`;
}

/** The addresses a socket unit listens on (`systemctl show -p Listen`), or null when systemd cannot say. */
export function socketUnitAddresses(socketUnit: string): Address[] | null {
  const r = spawnSync('systemctl', ['show', '--property=Listen', '--value', socketUnit], { encoding: 'utf8' });
  if (r.status !== 0 || typeof r.stdout !== 'string') return null;
  const addresses: Address[] = [];
  // One "ADDRESS (Stream)" per line; a path is a unix socket.
  for (const line of r.stdout.split('\n')) {
    const m = /^(\S+) \(Stream\)$/.exec(line.trim());
    if (!m) continue;
    try {
      addresses.push(m[1]!.startsWith('/') ? { kind: 'unix', path: m[1]! } : address.parse(m[1]!));
    } catch (err) {
      if (!(err instanceof InvalidValue)) throw err;
    }
  }
  return addresses.length ? addresses : null;
}

/**
 * What instance NAME really listens on, for --print-config: its socket unit's
 * addresses, and a note when the config's bind differs. Null without systemd.
 */
export function instanceBind(
  instance: string,
  { settings, sources }: ResolvedSettings,
): { value: string; source: string; note: string | null } | null {
  const socketUnit = `tsgunicorn@${instance}.socket`;
  const addresses = socketUnitAddresses(socketUnit);
  if (!addresses) return null;
  const note =
    sources.bind.kind === 'file'
      ? bindDisagreement(settings.bind, addresses, `${sources.bind.file}:${sources.bind.line}`, `tsgunicorn@${instance}.service`)
      : null;
  return { value: addresses.map(formatAddress).join(', '), source: `${socketUnit} (systemd's sockets take precedence over bind)`, note };
}
