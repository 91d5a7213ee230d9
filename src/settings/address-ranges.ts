// Lists of trusted peers (forwarded_allow_ips, proxy_allow_ips): addresses,
// CIDR ranges (10.0.0.0/8, fd00::/8) or * for any, as Gunicorn accepts them.
import net from 'node:net';
import { InvalidValue, type Kind } from './kinds.js';

const FORM = 'an IP address, a CIDR range (10.0.0.0/8, fd00::/8) or *';

/** One item of such a list, checked when the settings are read. */
export const addressRange: Kind<string> = {
  form: FORM,
  parse(s) {
    const t = s.trim();
    if (t === '*' || net.isIP(t) !== 0 || parseRange(t) !== null) return t;
    throw new InvalidValue(`expected ${FORM}, got ${JSON.stringify(s)}`);
  },
  format: (v) => v,
};

function parseRange(text: string): { network: string; prefix: number; type: 'ipv4' | 'ipv6' } | null {
  const slash = text.indexOf('/');
  if (slash === -1) return null;
  const network = unmapped(text.slice(0, slash));
  const bits = text.slice(slash + 1);
  const version = net.isIP(network);
  if (version === 0 || !/^(?:0|[1-9]\d{0,2})$/.test(bits)) return null;
  const prefix = Number(bits);
  if (prefix > (version === 4 ? 32 : 128)) return null;
  return { network, prefix, type: version === 4 ? 'ipv4' : 'ipv6' };
}

/** An IPv4 client of a dual-stack socket is reported as ::ffff:a.b.c.d; it matches as a.b.c.d. */
export const unmapped = (address: string): string =>
  address.length > 7 && address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;

/**
 * Whether an address is in the list. Exact addresses are a set lookup, so a
 * list without ranges costs what it did before ranges existed; ranges are
 * checked with node:net's BlockList only after that misses.
 */
export function createAddressMatcher(list: readonly string[]): (address: string) => boolean {
  if (list.includes('*')) return () => true;
  const exact = new Set<string>();
  const ranges = new net.BlockList();
  let hasRanges = false;
  for (const item of list) {
    const range = parseRange(item);
    if (range === null) {
      exact.add(unmapped(item));
    } else {
      ranges.addSubnet(range.network, range.prefix, range.type);
      hasRanges = true;
    }
  }
  return (address) => {
    const plain = unmapped(address);
    if (exact.has(plain)) return true;
    if (!hasRanges) return false;
    const version = net.isIP(plain);
    return version !== 0 && ranges.check(plain, version === 4 ? 'ipv4' : 'ipv6');
  };
}
