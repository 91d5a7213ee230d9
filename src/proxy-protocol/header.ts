// The PROXY protocol header a load balancer puts before a connection's first
// byte, versions 1 (text) and 2 (binary), as HAProxy's proxy-protocol.txt
// specifies it (section numbers below are that document's). Parsing is pure:
// it looks at the bytes received so far and says "need more", "invalid" or the
// header's length and the client address it carries.

export type ProxyProtocolMode = 'v1' | 'v2' | 'auto';

export interface ProxiedAddress {
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
}

export type ParseResult =
  | { kind: 'incomplete' }
  | { kind: 'invalid'; reason: string }
  /** `source` null: LOCAL, UNKNOWN or a family without an IP address; the real peer stands (§2.1, §2.2). */
  | { kind: 'header'; length: number; source: ProxiedAddress | null };

const INCOMPLETE: ParseResult = { kind: 'incomplete' };
const invalid = (reason: string): ParseResult => ({ kind: 'invalid', reason });

// §2.1: "PROXY" and one space; at most 107 characters including the CRLF.
const V1_PREFIX = Buffer.from('PROXY ');
const V1_MAX_LENGTH = 107;
// §2.2: the 12-byte signature, then version/command, family/transport, and the
// 16-bit length of what follows (addresses, then TLVs, which are skipped).
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_FIXED_LENGTH = 16;
// The length field allows 64 KiB; a real header (addresses and a few TLVs) is
// far smaller, and a peer announcing more is refused rather than buffered.
export const V2_MAX_LENGTH = 4096;

/** Whether `buf` could still become `prefix` (or starts with it). Byte by byte: a dozen bytes cost less than Buffer#compare's call. */
function startsLike(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  for (let i = 0; i < n; i++) if (buf[i] !== prefix[i]) return false;
  return true;
}

export function parseProxyHeader(buf: Buffer, mode: ProxyProtocolMode): ParseResult {
  // §2.2 (detection): v2 by its signature, v1 by "PROXY"; anything else is not
  // covered by the specification and the connection must be dropped.
  if (mode !== 'v1' && startsLike(buf, V2_SIGNATURE)) return parseV2(buf);
  if (mode !== 'v2' && startsLike(buf, V1_PREFIX)) return parseV1(buf);
  return invalid(mode === 'auto' ? 'not a PROXY protocol header' : `not a PROXY protocol ${mode} header`);
}

// §2.1: one space between fields, no leading zeros in numbers.
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const IPV6_CHARS = /^[0-9A-Fa-f:]+$/;
const PORT = /^(?:0|[1-9]\d{0,4})$/;

function parseV1(buf: Buffer): ParseResult {
  const end = buf.indexOf('\r\n', 0, 'latin1');
  const lf = buf.indexOf(0x0a);
  // "The receiver must not tolerate a single CR or LF character to end the line."
  if (lf !== -1 && (end === -1 || lf < end + 1)) return invalid('a v1 line ended without CRLF');
  if (end === -1) return buf.length >= V1_MAX_LENGTH ? invalid('a v1 line longer than 107 characters') : INCOMPLETE;
  if (end + 2 > V1_MAX_LENGTH) return invalid('a v1 line longer than 107 characters');
  const line = buf.toString('latin1', 0, end);
  const fields = line.split(' ');
  // "For UNKNOWN ... the receiver must ignore anything presented before the CRLF."
  if (fields[1] === 'UNKNOWN') return { kind: 'header', length: end + 2, source: null };
  if (fields.length !== 6) return invalid('a v1 line without exactly six fields');
  const [, proto, source, destination, sourcePort, destinationPort] = fields as [string, string, string, string, string, string];
  const family = proto === 'TCP4' ? 'IPv4' : proto === 'TCP6' ? 'IPv6' : null;
  if (family === null) return invalid(`a v1 protocol other than TCP4, TCP6 or UNKNOWN`);
  const address = family === 'IPv4' ? isIPv4 : isIPv6;
  if (!address(source) || !address(destination)) return invalid(`a v1 ${proto} line with an address not in canonical ${family} form`);
  if (!isPort(sourcePort) || !isPort(destinationPort)) return invalid('a v1 line with a port not from 0 to 65535');
  return { kind: 'header', length: end + 2, source: { address: source, port: Number(sourcePort), family } };
}

const isIPv4 = (s: string): boolean => IPV4.test(s);
const isIPv6 = (s: string): boolean => IPV6_CHARS.test(s) && canonicalIPv6(s) !== null;
const isPort = (s: string): boolean => PORT.test(s) && Number(s) <= 65535;

/** The 16 bytes of a hex-and-colons IPv6 address (at most one "::"), or null. */
function canonicalIPv6(s: string): Buffer | null {
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const groups = (half: string | undefined): string[] => (half === undefined || half === '' ? [] : half.split(':'));
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  const count = head.length + tail.length;
  if (halves.length === 1 ? count !== 8 : count > 7) return null;
  const bytes = Buffer.alloc(16);
  const put = (list: string[], from: number): boolean =>
    list.every((g, i) => g.length >= 1 && g.length <= 4 && (bytes.writeUInt16BE(parseInt(g, 16), (from + i) * 2), true));
  return put(head, 0) && put(tail, 8 - tail.length) ? bytes : null;
}

function parseV2(buf: Buffer): ParseResult {
  if (buf.length < V2_FIXED_LENGTH) return INCOMPLETE;
  const versionCommand = buf[12]!;
  // "The highest four bits contains the version ... must always be \x2."
  if (versionCommand >> 4 !== 2) return invalid('a v2 header with a version other than 2');
  const command = versionCommand & 0x0f;
  // Commands: \x0 LOCAL, \x1 PROXY; "other values are unassigned and must not be emitted by senders.
  // Receivers must drop connections presenting unexpected values here."
  if (command > 1) return invalid('a v2 header with a command other than LOCAL or PROXY');
  const length = V2_FIXED_LENGTH + buf.readUInt16BE(14);
  if (length > V2_MAX_LENGTH) return invalid(`a v2 header longer than ${V2_MAX_LENGTH} bytes`);
  if (buf.length < length) return INCOMPLETE;
  // LOCAL: "the receiver must accept this connection as valid and must use the
  // real connection endpoints and discard the protocol block including the family".
  if (command === 0) return { kind: 'header', length, source: null };
  const familyTransport = buf[13]!;
  // \x11 TCP over IPv4 (12 address bytes), \x21 TCP over IPv6 (36); for other
  // families "the receiver is free to accept the connection anyway and use the
  // real endpoint addresses". What follows the addresses (TLVs) is ignored.
  if (familyTransport === 0x11) {
    if (length < V2_FIXED_LENGTH + 12) return invalid('a v2 TCP4 header too short for its addresses');
    const address = `${buf[16]}.${buf[17]}.${buf[18]}.${buf[19]}`;
    return { kind: 'header', length, source: { address, port: buf.readUInt16BE(24), family: 'IPv4' } };
  }
  if (familyTransport === 0x21) {
    if (length < V2_FIXED_LENGTH + 36) return invalid('a v2 TCP6 header too short for its addresses');
    return { kind: 'header', length, source: { address: formatIPv6(buf, 16), port: buf.readUInt16BE(48), family: 'IPv6' } };
  }
  return { kind: 'header', length, source: null };
}

/** An IPv6 address as Node reports peers: lowercase, the longest zero run as "::" (RFC 5952), IPv4-mapped dotted. */
export function formatIPv6(buf: Buffer, at: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(at + i * 2));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${buf[at + 12]}.${buf[at + 13]}.${buf[at + 14]}.${buf[at + 15]}`;
  }
  let bestStart = -1;
  let bestLength = 1; // a single zero group is not shortened
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/**
 * What the master's health probe sends first: a header that carries no address
 * (v2 LOCAL, v1 UNKNOWN), so the probe is served as the connection it is.
 */
export function localHeader(mode: ProxyProtocolMode): Buffer {
  if (mode === 'v1') return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  return Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
}
