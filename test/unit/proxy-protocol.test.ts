import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { acceptProxyProtocol, REFUSAL_SUMMARY_MS } from '../../src/proxy-protocol/accept.js';
import { formatIPv6, localHeader, parseProxyHeader, V2_MAX_LENGTH } from '../../src/proxy-protocol/header.js';
import { tlv, v1, v2, V2_SIGNATURE } from '../helpers/proxy-protocol.js';
import { selfSigned } from '../helpers/tls.js';

const HTTP = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');

describe('v1 headers', () => {
  it('reads TCP4 and TCP6 lines and where the HTTP bytes start', () => {
    const line = v1('PROXY TCP4 203.0.113.7 192.0.2.1 40000 80');
    expect(parseProxyHeader(Buffer.concat([line, HTTP]), 'v1')).toEqual({
      kind: 'header',
      length: line.length,
      source: { address: '203.0.113.7', port: 40000, family: 'IPv4' },
    });
    expect(parseProxyHeader(v1('PROXY TCP6 2001:db8::7 2001:DB8::1 65535 0'), 'auto')).toMatchObject({
      source: { address: '2001:db8::7', port: 65535, family: 'IPv6' },
    });
  });

  it('takes UNKNOWN, with or without the rest of the line, as the real peer', () => {
    expect(parseProxyHeader(v1('PROXY UNKNOWN'), 'v1')).toEqual({ kind: 'header', length: 15, source: null });
    const long = v1('PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535');
    expect(long.length).toBe(107);
    expect(parseProxyHeader(long, 'v1')).toEqual({ kind: 'header', length: 107, source: null });
  });

  it('waits for the CRLF of a line received in parts', () => {
    const line = v1('PROXY TCP4 203.0.113.7 192.0.2.1 40000 80');
    for (let n = 0; n < line.length; n++) expect(parseProxyHeader(line.subarray(0, n), 'v1').kind, `${n} bytes`).toBe('incomplete');
  });

  it('refuses lines that do not exactly match the protocol', () => {
    for (const bad of [
      'PROXY TCP4 203.0.113.7 192.0.2.1 40000 80\n', // LF alone
      'PROXY TCP4 203.0.113.7 192.0.2.1 40000\r\n',
      'PROXY TCP4 203.0.113.7  192.0.2.1 40000 80\r\n', // two spaces
      'PROXY TCP4 203.0.113.07 192.0.2.1 40000 80\r\n', // leading zero
      'PROXY TCP4 256.0.113.7 192.0.2.1 40000 80\r\n',
      'PROXY TCP4 2001:db8::7 192.0.2.1 40000 80\r\n', // family mismatch
      'PROXY TCP6 2001:db8::7::1 2001:db8::1 40000 80\r\n',
      'PROXY TCP6 ::ffff:1.2.3.4 2001:db8::1 40000 80\r\n', // not hex groups
      'PROXY TCP4 203.0.113.7 192.0.2.1 65536 80\r\n',
      'PROXY TCP4 203.0.113.7 192.0.2.1 040000 80\r\n',
      'PROXY UDP4 203.0.113.7 192.0.2.1 40000 80\r\n',
      'proxy TCP4 203.0.113.7 192.0.2.1 40000 80\r\n',
    ]) {
      expect(parseProxyHeader(Buffer.from(bad, 'latin1'), 'v1').kind, JSON.stringify(bad)).toBe('invalid');
    }
  });

  it('refuses a line without CRLF in its first 107 characters', () => {
    const oversized = Buffer.from(`PROXY UNKNOWN ${'f'.repeat(100)}`);
    expect(parseProxyHeader(oversized, 'v1')).toEqual({ kind: 'invalid', reason: 'a v1 line longer than 107 characters' });
    expect(parseProxyHeader(Buffer.from(`PROXY UNKNOWN ${'f'.repeat(92)}\r\n`), 'v1').kind).toBe('invalid'); // 108 with CRLF
  });
});

describe('v2 headers', () => {
  it('reads TCP4 and TCP6 addresses and skips the TLVs after them', () => {
    const withTlvs = v2({
      source: '203.0.113.7',
      port: 50123,
      tlvs: Buffer.concat([tlv(0x01, 'h2'), tlv(0x02, 'example.org'), tlv(0x05, 'unique-id')]),
    });
    expect(parseProxyHeader(Buffer.concat([withTlvs, HTTP]), 'v2')).toEqual({
      kind: 'header',
      length: withTlvs.length,
      source: { address: '203.0.113.7', port: 50123, family: 'IPv4' },
    });
    expect(parseProxyHeader(v2({ source: '2001:db8::7', port: 1 }), 'auto')).toMatchObject({
      source: { address: '2001:db8::7', port: 1, family: 'IPv6' },
    });
  });

  it('takes LOCAL, and families without an IP address, as the real peer', () => {
    expect(parseProxyHeader(localHeader('v2'), 'v2')).toEqual({ kind: 'header', length: 16, source: null });
    expect(parseProxyHeader(v2({ command: 0 }), 'v2')).toMatchObject({ kind: 'header', source: null });
    const unspec = Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x00, 0x00, 0x00])]);
    expect(parseProxyHeader(unspec, 'v2')).toEqual({ kind: 'header', length: 16, source: null });
    expect(parseProxyHeader(v2({ familyTransport: 0x12 }), 'v2')).toMatchObject({ kind: 'header', source: null }); // UDP4
  });

  it('waits for a header received in parts, TLVs included', () => {
    const header = v2({ source: '2001:db8::7', tlvs: tlv(0x04, Buffer.alloc(8)) });
    for (let n = 0; n < header.length; n++) expect(parseProxyHeader(header.subarray(0, n), 'v2').kind, `${n} bytes`).toBe('incomplete');
    expect(parseProxyHeader(header, 'v2').kind).toBe('header');
  });

  it('refuses a wrong version or command, addresses cut short, and oversized headers', () => {
    const header = v2({});
    const withByte = (at: number, value: number) => Buffer.from(header.map((b, i) => (i === at ? value : b)));
    expect(parseProxyHeader(withByte(12, 0x11), 'v2').kind).toBe('invalid'); // version 1
    expect(parseProxyHeader(withByte(12, 0x22), 'v2').kind).toBe('invalid'); // command 2
    const short = Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11, 0x00, 0x08]), Buffer.alloc(8)]);
    expect(parseProxyHeader(short, 'v2')).toEqual({ kind: 'invalid', reason: 'a v2 TCP4 header too short for its addresses' });
    const huge = v2({ tlvs: tlv(0xe0, Buffer.alloc(V2_MAX_LENGTH)) });
    expect(parseProxyHeader(huge.subarray(0, 16), 'v2').kind).toBe('invalid');
    const largest = v2({ tlvs: tlv(0xe0, Buffer.alloc(V2_MAX_LENGTH - 16 - 12 - 3)) });
    expect(largest.length).toBe(V2_MAX_LENGTH);
    expect(parseProxyHeader(largest, 'v2').kind).toBe('header');
  });
});

describe('which version', () => {
  it('accepts only the configured version, either with auto, and drops garbage at its first wrong byte', () => {
    const one = v1('PROXY TCP4 203.0.113.7 192.0.2.1 40000 80');
    const two = v2({});
    expect(parseProxyHeader(one, 'v2').kind).toBe('invalid');
    expect(parseProxyHeader(two, 'v1').kind).toBe('invalid');
    expect(parseProxyHeader(one, 'auto').kind).toBe('header');
    expect(parseProxyHeader(two, 'auto').kind).toBe('header');
    expect(parseProxyHeader(HTTP, 'auto').kind).toBe('invalid');
    expect(parseProxyHeader(Buffer.from('\x16\x03\x01'), 'auto').kind).toBe('invalid'); // a TLS ClientHello
    expect(parseProxyHeader(Buffer.from('PRO'), 'auto').kind).toBe('incomplete');
    expect(parseProxyHeader(Buffer.from('PROXZ'), 'auto').kind).toBe('invalid');
    expect(parseProxyHeader(V2_SIGNATURE.subarray(0, 5), 'auto').kind).toBe('incomplete');
  });
});

it('writes IPv6 addresses as Node reports peers', () => {
  const hex = (s: string) => Buffer.from(s.replace(/ /g, ''), 'hex');
  expect(formatIPv6(hex('2001 0db8 0000 0000 0001 0000 0000 0001'), 0)).toBe('2001:db8::1:0:0:1');
  expect(formatIPv6(hex('0000 0000 0000 0000 0000 0000 0000 0001'), 0)).toBe('::1');
  expect(formatIPv6(hex('fd00 0000 0000 0000 0000 0000 0000 0000'), 0)).toBe('fd00::');
  expect(formatIPv6(hex('2001 0db8 0000 0001 0001 0001 0001 0001'), 0)).toBe('2001:db8:0:1:1:1:1:1');
  expect(formatIPv6(hex('0000 0000 0000 0000 0000 ffff c000 0201'), 0)).toBe('::ffff:192.0.2.1');
});

describe('on a server', () => {
  const cleanup: Array<() => void> = [];
  afterEach(() => cleanup.splice(0).forEach((f) => f()));
  const settings = (over: object = {}) => ({
    proxy_protocol: 'auto' as const,
    proxy_allow_ips: ['127.0.0.1', '::1'],
    header_timeout: 5,
    ...over,
  });
  const warnings: string[] = [];
  const logger = { warning: (m: string) => void warnings.push(m) };

  async function serve(server: http.Server | https.Server, over: object = {}): Promise<number> {
    const seen = (req: http.IncomingMessage, res: http.ServerResponse) =>
      res.end(`${req.socket.remoteAddress} ${req.socket.remotePort} ${req.socket.remoteFamily} ${req.url}`);
    server.on('request', seen);
    acceptProxyProtocol(server, settings(over), logger);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanup.push(() => server.close() && server.closeAllConnections());
    return (server.address() as net.AddressInfo).port;
  }

  /** Sends the bytes at once and returns all the server answered until it closed. */
  async function exchange(port: number, bytes: Buffer): Promise<string> {
    const socket = net.connect(port, '127.0.0.1');
    socket.end(bytes);
    let text = '';
    socket.on('data', (d) => (text += String(d)));
    // A refused connection may be reset; what counts is that nothing was answered.
    await new Promise((resolve) => socket.on('error', () => {}).on('close', resolve));
    return text;
  }

  it('gives requests the client address, pipelined requests and all', async () => {
    const port = await serve(http.createServer());
    const get = (path: string, close = false) => `GET ${path} HTTP/1.1\r\nHost: x\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;
    const text = await exchange(
      port,
      Buffer.concat([v2({ source: '203.0.113.7', port: 50123 }), Buffer.from(get('/a') + get('/b', true))]),
    );
    expect(text).toContain('203.0.113.7 50123 IPv4 /a');
    expect(text).toContain('203.0.113.7 50123 IPv4 /b');
    const six = await exchange(port, Buffer.concat([v1('PROXY TCP6 2001:db8::7 2001:db8::1 4000 80'), Buffer.from(get('/c', true))]));
    expect(six).toContain('2001:db8::7 4000 IPv6 /c');
    const local = await exchange(port, Buffer.concat([localHeader('v2'), Buffer.from(get('/d', true))]));
    expect(local).toMatch(/127\.0\.0\.1 \d+ IPv4 \/d/);
  });

  it('reads a header received in parts, and a request sent after it in a write of its own', async () => {
    const port = await serve(http.createServer());
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (d) => (text += String(d)));
    const header = v2({ source: '198.51.100.20', port: 2020 });
    const sent = (bytes: Buffer) => new Promise((resolve) => socket.write(bytes, resolve));
    await sent(header.subarray(0, 5));
    await sent(header.subarray(5, 20));
    await sent(header.subarray(20));
    socket.end('GET /later HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await once(socket, 'close');
    expect(text).toContain('198.51.100.20 2020 IPv4 /later');
  });

  it('ends a first request whose headers are not complete header_timeout after the connection with 408', async () => {
    const port = await serve(http.createServer(), { header_timeout: 1 });
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (d) => (text += String(d)));
    // Node's own headersTimeout (60 s here) would wait far longer: the 408 comes from header_timeout.
    socket.write(Buffer.concat([v2({}), Buffer.from('GET /slow HTTP/1.1\r\nHost: x\r\n')]));
    await new Promise((resolve) => socket.on('error', () => {}).on('close', resolve));
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('leaves a kept-alive connection whose first request came in time open past header_timeout', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const port = await serve(http.createServer(), { header_timeout: 1 });
      // The first request with the header, or completed after it (its headers cut short in the first write).
      for (const [first, rest] of [
        ['GET /first HTTP/1.1\r\nHost: x\r\n\r\n', ''],
        ['GET /first HTTP/1.1\r\n', 'Host: x\r\n\r\n'],
      ] as const) {
        const socket = net.connect(port, '127.0.0.1');
        let text = '';
        socket.on('data', (d) => (text += String(d)));
        const answered = new Promise<void>((resolve) => {
          const check = () => text.includes('/first') && (socket.off('data', check), resolve());
          socket.on('data', check);
        });
        socket.write(Buffer.concat([v2({ source: '203.0.113.30', port: 3030 }), Buffer.from(first)]));
        if (rest !== '') socket.write(rest);
        await answered;
        // Past header_timeout (counted from the connection), the idle connection still serves.
        vi.advanceTimersByTime(1000);
        socket.end('GET /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
        await once(socket, 'close');
        expect(text).toContain('203.0.113.30 3030 IPv4 /first');
        expect(text).toContain('203.0.113.30 3030 IPv4 /second');
        expect(text).not.toContain(' 408 ');
      }
    } finally {
      vi.useRealTimers();
    }
  });

  it('reads the header before the TLS handshake and gives the TLS socket the client address', async () => {
    const { cert, key } = selfSigned();
    const port = await serve(https.createServer({ cert, key }));
    const raw = net.connect(port, '127.0.0.1');
    raw.write(v2({ source: '198.51.100.9', port: 1234 }));
    const secure = tls.connect({ socket: raw, rejectUnauthorized: false });
    secure.end('GET /tls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    let text = '';
    secure.on('data', (d) => (text += d));
    await once(secure, 'close');
    expect(text).toContain('198.51.100.9 1234 IPv4 /tls');
  });

  it('closes connections from peers not allowed and with bad headers, and logs them in aggregate', async () => {
    warnings.length = 0;
    const port = await serve(http.createServer(), { proxy_allow_ips: ['10.0.0.0/8'] });
    for (let i = 0; i < 5; i++) expect(await exchange(port, Buffer.concat([v2({}), HTTP]))).toBe('');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /^Refused a connection \(PROXY protocol\) from 127\.0\.0\.1: not in proxy_allow_ips; further refusals are summed up/,
    );

    warnings.length = 0;
    const strict = await serve(http.createServer(), { proxy_protocol: 'v2' });
    expect(await exchange(strict, HTTP)).toBe('');
    expect(await exchange(strict, v1('PROXY TCP4 203.0.113.7 192.0.2.1 40000 80'))).toBe('');
    expect(await exchange(strict, v2({}).subarray(0, 20))).toBe(''); // truncated, then closed
    expect(warnings).toEqual([expect.stringMatching(/from 127\.0\.0\.1: not a PROXY protocol v2 header; further/)]);
  });

  it('sums refusals up once per interval, and says nothing for a quiet one', async () => {
    warnings.length = 0;
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    try {
      const port = await serve(http.createServer(), { proxy_allow_ips: ['10.0.0.0/8'] });
      for (let i = 0; i < 4; i++) await exchange(port, HTTP);
      expect(warnings).toHaveLength(1);
      vi.advanceTimersByTime(REFUSAL_SUMMARY_MS);
      expect(warnings).toHaveLength(2);
      expect(warnings[1]).toBe(
        'Refused 3 more connection(s) in the last 10 s (PROXY protocol); the last: from 127.0.0.1: not in proxy_allow_ips',
      );
      vi.advanceTimersByTime(REFUSAL_SUMMARY_MS);
      expect(warnings).toHaveLength(2);
      // After a quiet interval the next refusal is reported at once again.
      await exchange(port, HTTP);
      expect(warnings).toHaveLength(3);
      expect(warnings[2]).toMatch(/^Refused a connection \(PROXY protocol\) from 127\.0\.0\.1/);
    } finally {
      vi.useRealTimers();
    }
  });
});
