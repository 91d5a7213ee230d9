// PROXY protocol through the real CLI: the client address a load balancer sends
// is the one logged and the one a fetch app's conninfo reads; the master's health
// probe passes through the same listener; other peers are disconnected.
import net from 'node:net';
import tls from 'node:tls';
import { expect, it } from 'vitest';
import { rawExchange } from '../helpers/http.js';
import { healthCheckArgs, healthCheckPassed } from '../helpers/metrics.js';
import { freePort } from '../helpers/ports.js';
import { v1, v2 } from '../helpers/proxy-protocol.js';
import { selfSigned } from '../helpers/tls.js';
import { FIXTURES, HELLO_APP, startServer } from '../helpers/tsgunicorn.js';

async function through(port: number, header: Buffer, path: string): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  socket.end(Buffer.concat([header, Buffer.from(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)]));
  let text = '';
  socket.on('data', (d) => (text += String(d)));
  // A refused connection may be reset; what counts is that nothing was answered.
  await new Promise((resolve) => socket.on('error', () => {}).on('close', resolve));
  return text;
}

it('logs the client address of v1 and v2 headers, and the health probe passes the PROXY listener', async () => {
  const metricsPort = await freePort();
  const server = await startServer([
    '-w',
    '1',
    '--proxy-protocol',
    'auto',
    '--proxy-allow-from',
    '127.0.0.0/8, ::1',
    '--access-logfile',
    '-',
    '--access-logformat',
    'peer=%(h)s %(U)s',
    ...healthCheckArgs(metricsPort, '/health'),
    HELLO_APP,
  ]);
  expect(await through(server.port, v2({ source: '203.0.113.7', port: 40001 }), '/')).toContain('Hello, tsgunicorn!');
  expect(await through(server.port, v1('PROXY TCP6 2001:db8::9 2001:db8::1 40002 80'), '/')).toContain('Hello, tsgunicorn!');
  await server.waitFor(/peer=203\.0\.113\.7 \/$/);
  await server.waitFor(/peer=2001:db8::9 \/$/);
  await healthCheckPassed(metricsPort);
  // The probe announced itself as LOCAL: it is logged with its real address.
  await server.waitFor(/peer=127\.0\.0\.1 \/health$/);
  // A request without the header is not served.
  expect(await rawExchange(server.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')).toBe('');
  await server.waitFor(/Refused a connection \(PROXY protocol\) from 127\.0\.0\.1: not a PROXY protocol header/);
  await server.stop();
});

it('gives a fetch app the client address, and disconnects peers outside proxy_allow_ips', async () => {
  const server = await startServer(['-w', '1', '--proxy-protocol', 'v2', `${FIXTURES}/hono-app.mjs`]);
  expect(await through(server.port, v2({ source: '198.51.100.20', port: 5555 }), '/peer')).toMatch(/\r\n198\.51\.100\.20 5555$/);
  await server.stop();

  const fenced = await startServer(['-w', '1', '--proxy-protocol', 'v2', '--proxy-allow-from', '10.0.0.0/8', `${FIXTURES}/hono-app.mjs`]);
  expect(await through(fenced.port, v2({ source: '198.51.100.20' }), '/peer')).toBe('');
  await fenced.waitFor(/Refused a connection \(PROXY protocol\) from 127\.0\.0\.1: not in proxy_allow_ips/);
  await fenced.stop();
});

it("reads the header before the TLS handshake of a server script's own https server, and probes it over TLS", async () => {
  const { certfile, keyfile } = selfSigned();
  const metricsPort = await freePort();
  const server = await startServer(
    [
      '-w',
      '1',
      '--proxy-protocol',
      'v2',
      '--access-logfile',
      '-',
      '--access-logformat',
      'peer=%(h)s %(U)s',
      ...healthCheckArgs(metricsPort, '/'),
      `${FIXTURES}/server-scripts/own-tls.mjs`,
    ],
    { env: { TLS_CERT: certfile, TLS_KEY: keyfile, SCRIPT_PORT: String(await freePort()) } },
  );
  const raw = net.connect(server.port, '127.0.0.1');
  raw.write(v2({ source: '192.0.2.77', port: 4444 }));
  const secure = tls.connect({ socket: raw, rejectUnauthorized: false });
  secure.end('GET /tls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  let text = '';
  secure.on('data', (d) => (text += d));
  await new Promise((resolve) => secure.on('close', resolve));
  expect(text).toMatch(/\r\ntls true$/);
  await server.waitFor(/peer=192\.0\.2\.77 \/tls$/);
  // The probe's LOCAL header goes before its TLS handshake too.
  await healthCheckPassed(metricsPort);
  await server.stop();
});

it('header_timeout counts from the connection: time spent on the PROXY header is part of it', async () => {
  const headerTimeout = 4;
  const server = await startServer(['-w', '1', '--proxy-protocol', 'v1', '--header-timeout', String(headerTimeout), HELLO_APP]);
  const socket = net.connect(server.port, '127.0.0.1');
  let text = '';
  socket.on('data', (d) => (text += String(d)));
  const closed = new Promise((resolve) => socket.on('error', () => {}).on('close', resolve));
  await new Promise((resolve) => socket.once('connect', resolve));
  const openedAt = Date.now();
  const header = v1('PROXY TCP4 203.0.113.7 192.0.2.1 40001 80');
  // Most of header_timeout goes on the PROXY header, then the request's headers start and stall.
  socket.write(header.subarray(0, 10));
  await new Promise((resolve) => setTimeout(resolve, (headerTimeout - 1) * 1000));
  socket.write(Buffer.concat([header.subarray(10), Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n')]));
  await closed;
  const lifetime = Date.now() - openedAt;
  expect(text).toMatch(/^HTTP\/1\.1 408 /);
  // Counted from the PROXY header's end, it would be header_timeout more: 7 s.
  expect(lifetime).toBeLessThan((headerTimeout + 2) * 1000);
  await server.stop();
});
