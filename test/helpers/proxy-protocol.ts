// PROXY protocol headers as a load balancer sends them (HAProxy's proxy-protocol.txt).
import net from 'node:net';

export const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

export function v1(line: string): Buffer {
  return Buffer.from(`${line}\r\n`, 'latin1');
}

function addressBytes(address: string): Buffer {
  if (net.isIPv4(address)) return Buffer.from(address.split('.').map(Number));
  const bytes = Buffer.alloc(16);
  const [head = '', tail = ''] = address.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  h.forEach((g, i) => bytes.writeUInt16BE(parseInt(g, 16), i * 2));
  t.forEach((g, i) => bytes.writeUInt16BE(parseInt(g, 16), (8 - t.length + i) * 2));
  return bytes;
}

/** A v2 PROXY (or LOCAL) header over TCP, with optional TLVs after the addresses. */
export function v2(options: {
  source?: string;
  port?: number;
  destination?: string;
  command?: number;
  tlvs?: Buffer;
  familyTransport?: number;
}): Buffer {
  const { source = '203.0.113.7', port = 40000, command = 1, tlvs = Buffer.alloc(0) } = options;
  const ipv6 = net.isIPv6(source);
  const destination = options.destination ?? (ipv6 ? '2001:db8::1' : '192.0.2.1');
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(port, 0);
  ports.writeUInt16BE(443, 2);
  const body = Buffer.concat([addressBytes(source), addressBytes(destination), ports, tlvs]);
  const fixed = Buffer.from([0x20 | command, options.familyTransport ?? (ipv6 ? 0x21 : 0x11), 0, 0]);
  fixed.writeUInt16BE(body.length, 2);
  return Buffer.concat([V2_SIGNATURE, fixed, body]);
}

/** A TLV (§2.2.x): type, 16-bit length, value. */
export function tlv(type: number, value: Buffer | string): Buffer {
  const data = Buffer.from(value);
  const head = Buffer.from([type, 0, 0]);
  head.writeUInt16BE(data.length, 1);
  return Buffer.concat([head, data]);
}
