// header_timeout from the first byte a connection could send, on every kind of
// socket an exported app is served on: a client that connects and sends
// nothing, or stops inside the TLS handshake or the HTTP/2 preface, is closed
// by the worker after header_timeout (not Node's 120 s TLS handshake timeout),
// and the worker goes on serving.
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { h2request } from '../helpers/http2.js';
import { selfSigned, type CertificatePair } from '../helpers/tls.js';
import { FIXTURES, serversStoppedAfterEach } from '../helpers/tsgunicorn.js';

const start = serversStoppedAfterEach();
const APP = path.join(FIXTURES, 'protocol-app.mjs');
// A TLS record header announcing a 512-byte handshake message, then its first byte (ClientHello): the rest never comes.
const PARTIAL_CLIENT_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);
const PARTIAL_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n', 'latin1');

/** Connects, writes `bytes` (if any), and resolves once the server has closed the connection; never closes it itself. */
function closedByServer(port: number, bytes?: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      if (bytes) socket.write(bytes);
    });
    socket.resume();
    socket.on('error', () => {});
    socket.once('close', () => resolve());
  });
}

/** Completes a TLS handshake offering `alpn`, sends nothing more, and resolves once the server has closed the connection. */
function closedAfterHandshake(port: number, pair: CertificatePair, alpn: string[]): Promise<string | false | null> {
  return new Promise((resolve) => {
    let negotiated: string | false | null = null;
    const socket = tls.connect({ port, host: '127.0.0.1', ca: pair.cert, ALPNProtocols: alpn }, () => {
      negotiated = socket.alpnProtocol;
    });
    socket.resume();
    socket.on('error', () => {});
    socket.once('close', () => resolve(negotiated));
  });
}

function tlsArgs(pair: CertificatePair, protocols: string): string[] {
  return ['--certfile', pair.certfile, '--keyfile', pair.keyfile, '--http-protocols', protocols];
}

describe('header_timeout from the connection', () => {
  it('h2,h1 over TLS: silent, a partial ClientHello, and a finished handshake with no stream are closed; the worker serves on', async () => {
    const pair = selfSigned();
    const server = await start(['-w', '1', ...tlsArgs(pair, 'h2,h1'), '--header-timeout', '1', APP]);
    await Promise.all([
      closedByServer(server.port),
      closedByServer(server.port, PARTIAL_CLIENT_HELLO),
      expect(closedAfterHandshake(server.port, pair, ['h2'])).resolves.toBe('h2'),
      expect(closedAfterHandshake(server.port, pair, ['http/1.1'])).resolves.toBe('http/1.1'),
    ]);
    const reply = await h2request(`https://127.0.0.1:${server.port}/after`, { ca: pair.cert });
    expect(JSON.parse(reply.body)).toMatchObject({ httpVersion: '2.0', encrypted: true });
  });

  it('HTTP/1.1 over TLS: silent, a partial ClientHello, and a finished handshake with no request are closed', async () => {
    const pair = selfSigned();
    const server = await start(['-w', '1', '--certfile', pair.certfile, '--keyfile', pair.keyfile, '--header-timeout', '1', APP]);
    await Promise.all([
      closedByServer(server.port),
      closedByServer(server.port, PARTIAL_CLIENT_HELLO),
      closedAfterHandshake(server.port, pair, ['http/1.1']),
    ]);
  });

  it('h2c with prior knowledge: silent, a partial preface, and a preface with no stream are closed', async () => {
    const server = await start(['-w', '1', '--http2-cleartext', 'prior-knowledge', '--header-timeout', '1', APP]);
    const session = http2.connect(server.url);
    session.on('error', () => {});
    await Promise.all([
      closedByServer(server.port),
      closedByServer(server.port, PARTIAL_PREFACE),
      new Promise((resolve) => session.once('close', resolve)),
    ]);
  });
});
