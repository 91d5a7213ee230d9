// h2c by HTTP/1.1 Upgrade (http2_cleartext = upgrade | both), with nghttp2's own
// client (`nghttp -u`, Debian's nghttp2-client) doing the upgrade.
import { execFile } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { rawExchange, request } from '../helpers/http.js';
import { CLIENT_PREFACE } from '../helpers/http2.js';
import { FIXTURES, serversStoppedAfterEach } from '../helpers/tsgunicorn.js';

const start = serversStoppedAfterEach();
const NODE_APP = path.join(FIXTURES, 'protocol-app.mjs');

/** nghttp's verbose run over these URLs (-u: by upgrade; else prior knowledge). */
async function nghttp(urls: string[], upgrade: boolean): Promise<string> {
  const { stdout } = await promisify(execFile)('nghttp', [...(upgrade ? ['-u'] : []), '-v', '-t', '20', ...urls]);
  return stdout;
}

/** The JSON bodies protocol-app.mjs answered in nghttp's output, in order. */
function bodies(output: string): { httpVersion: string; url: string }[] {
  return [...output.matchAll(/^\{"pid".*\}/gm)].map((m) => JSON.parse(m[0]) as { httpVersion: string; url: string });
}

const upgradeRequest = (target: string, extra = ''): string =>
  `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n${extra}\r\n`;

describe('http2_cleartext = upgrade', () => {
  it('an HTTP/1.1 request asking for h2c gets 101 and its answer on stream 1; the session goes on in HTTP/2', async () => {
    const server = await start(['-w', '1', '--http2-cleartext', 'upgrade', '--access-logfile', '-', NODE_APP]);
    const out = await nghttp([`${server.url}/first`, `${server.url}/second`], true);
    expect(out).toMatch(/HTTP Upgrade response\s+HTTP\/1\.1 101 Switching Protocols/);
    expect(out).toMatch(/HTTP Upgrade success/);
    expect(out).toMatch(/recv HEADERS frame <length=\d+, flags=0x04, stream_id=1>/);
    expect(bodies(out)).toEqual([
      expect.objectContaining({ httpVersion: '2.0', url: '/first' }),
      expect.objectContaining({ httpVersion: '2.0', url: '/second' }),
    ]);
    await server.waitFor(/"GET \/first HTTP\/2\.0" 200 /);
    await server.waitFor(/"GET \/second HTTP\/2\.0" 200 /);
    // The upgraded request's fields reach the app as HTTP/2 fields: Host as :authority, long values whole.
    const long = 'v'.repeat(300);
    const { stdout } = await promisify(execFile)('nghttp', ['-u', '-H', `x-long: ${long}`, `${server.url}/headers`]);
    expect(JSON.parse(stdout)).toMatchObject({ ':authority': `127.0.0.1:${server.port}`, ':scheme': 'http', 'x-long': long });
    // Prior knowledge is not this mode: the preface is no HTTP/1.1 request.
    expect(await rawExchange(server.port, CLIENT_PREFACE)).toMatch(/^HTTP\/1\.1 400 /);
  });

  it('a request with a body, or from a peer not in forwarded_allow_ips, is served HTTP/1.1 without upgrading', async () => {
    const server = await start(['-w', '1', '--http2-cleartext', 'upgrade', NODE_APP]);
    const withBody = await rawExchange(server.port, upgradeRequest('/with-body', 'Content-Length: 2\r\n') + 'hi');
    expect(withBody).toMatch(/^HTTP\/1\.1 200 /);
    expect(withBody).toContain('"httpVersion":"1.1","url":"/with-body"');

    const untrusted = await start(['-w', '1', '--http2-cleartext', 'upgrade', '--forwarded-allow-ips', '192.0.2.1', NODE_APP]);
    const plain = await rawExchange(untrusted.port, upgradeRequest('/untrusted'));
    expect(plain).toMatch(/^HTTP\/1\.1 200 /);
    expect(plain).toContain('"httpVersion":"1.1","url":"/untrusted"');
  });

  it('a client that answers the 101 with no preface is disconnected after header_timeout', async () => {
    const server = await start(['-w', '1', '--http2-cleartext', 'upgrade', '--header-timeout', '1', NODE_APP]);
    const socket = net.connect(server.port, '127.0.0.1');
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.write(upgradeRequest('/silent'));
    await new Promise((resolve) => socket.once('close', resolve));
    expect(received).toBe('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
  });
});

describe('http2_cleartext = both', () => {
  it('prior knowledge and upgrade on the same socket, beside the app’s own WebSocket upgrades and HTTP/1.1', async () => {
    const server = await start(['-w', '1', '--http2-cleartext', 'both', '--access-logfile', '-', path.join(FIXTURES, 'ws-app.mjs')]);
    expect(await nghttp([`${server.url}/by-upgrade`], true)).toMatch(/HTTP Upgrade success[\s\S]*plain http/);
    expect(await nghttp([`${server.url}/by-preface`], false)).toMatch(/plain http/);
    await server.waitFor(/"GET \/by-upgrade HTTP\/2\.0" 200 /);
    await server.waitFor(/"GET \/by-preface HTTP\/2\.0" 200 /);

    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const echoed = new Promise<string>((resolve) => ws.once('message', (data: Buffer) => resolve(data.toString('utf8'))));
    ws.send('still a websocket');
    expect(await echoed).toBe('echo still a websocket');
    ws.close();

    expect((await request(`${server.url}/h1`)).body).toBe('plain http');
  });
});
