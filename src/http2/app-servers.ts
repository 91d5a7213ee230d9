// HTTP/2 for exported apps: h2 over TLS, chosen by ALPN beside HTTP/1.1
// (http_protocols), and cleartext h2c with prior knowledge or by upgrade for
// trusted proxies (http2_cleartext). Both servers call the worker's request listener with Node's
// compatibility request and response, so an HTTP/2 request meets the same
// request handler as an HTTP/1.1 one.
import type { IncomingMessage, RequestListener, Server as HttpServer } from 'node:http';
import type { Http2SecureServer, Http2Server, Http2ServerRequest, Http2ServerResponse, Settings as Http2Settings } from 'node:http2';
import net from 'node:net';
import { createAddressMatcher } from '../settings/address-ranges.js';
import type { Settings } from '../settings/schema.js';
import { asksForH2c, upgradeToHttp2 } from './cleartext-upgrade.js';
import { mayBePreface, PREFACE, readOpening } from './preface.js';
import { tlsServerOptions } from '../worker/tls-options.js';
import { applySessionTimers } from './session-timers.js';

const http2 = () => process.getBuiltinModule('node:http2');
// Node's compatibility request and response stand for IncomingMessage and ServerResponse (typed apart).
type CompatListener = (req: Http2ServerRequest, res: Http2ServerResponse) => void;

/** Gunicorn's HTTP/2 limits, as the SETTINGS frame every session opens with. */
export function sessionSettings(settings: Settings): Http2Settings {
  return {
    maxConcurrentStreams: settings.http2_max_concurrent_streams,
    initialWindowSize: settings.http2_initial_window_size,
    maxFrameSize: settings.http2_max_frame_size,
    maxHeaderListSize: settings.http2_max_header_list_size,
  };
}

/**
 * TLS with ALPN offering h2 and, when http_protocols has h1, HTTP/1.1 too, which
 * node:http2 serves through node:http's parser (allowHTTP1). Node's server
 * prefers h2 when a client offers both.
 */
export function createSecureAppServer(settings: Settings, listener: RequestListener): Http2SecureServer {
  const server = http2().createSecureServer(
    {
      ...tlsServerOptions(settings),
      allowHTTP1: settings.http_protocols.includes('h1'),
      settings: sessionSettings(settings),
    },
    listener as unknown as CompatListener,
  );
  applySessionTimers(server, settings);
  return server;
}

// The TCP peer, whatever a PROXY header made remoteAddress say since (proxy-protocol/accept.ts).
// eslint-disable-next-line @typescript-eslint/unbound-method -- a getter, called with the socket as this
const tcpPeer = Object.getOwnPropertyDescriptor(net.Socket.prototype, 'remoteAddress')!.get!;

// node:http's choice of which Upgrade requests become 'upgrade' events (Node 24; not in @types/node yet).
interface UpgradeGate {
  shouldUpgradeCallback: (req: IncomingMessage) => boolean;
}
type UpgradeListener = (req: IncomingMessage, socket: net.Socket, head: Buffer) => void;

/**
 * h2c on the plain server's sockets, for peers in forwarded_allow_ips: with
 * prior knowledge, a connection that opens with the preface is handed to an
 * HTTP/2 server; by upgrade, an HTTP/1.1 request asking for h2c is answered 101
 * and its connection handed over. Every other connection stays HTTP/1.1. Trust
 * is the TCP peer's, as Gunicorn's forwarded headers are: behind a PROXY header,
 * the proxy's address. The app's own Upgrade requests (WebSocket) go to
 * `appUpgrade`. Returns the HTTP/2 server, whose sessions a drain sends GOAWAY.
 */
export function serveCleartextHttp2(
  front: HttpServer,
  settings: Settings,
  listener: RequestListener,
  appUpgrade: UpgradeListener | null,
): Http2Server {
  const sessions = http2().createServer({ settings: sessionSettings(settings) }, listener as unknown as CompatListener);
  applySessionTimers(sessions, settings);
  const trusted = createAddressMatcher(settings.forwarded_allow_ips);
  // eslint-disable-next-line @typescript-eslint/unbound-method -- always called with the server as this
  const emit = front.emit as (this: net.Server, event: string | symbol, ...args: unknown[]) => boolean;

  function hand(socket: net.Socket, received: Buffer, asHttp2: boolean): void {
    socket.pause();
    socket.unshift(received);
    if (asHttp2) {
      sessions.emit('connection', socket);
      return;
    }
    emit.call(front, 'connection', socket);
    // node:http reads the bytes given back through 'data'.
    socket.resume();
  }

  // Reads until the bytes are the preface or cannot be: HTTP/1.1 differs at its first byte ('P' of PRI aside).
  function peek(socket: net.Socket): void {
    readOpening(socket, Buffer.alloc(0), settings.header_timeout * 1000, (received) => {
      const isPreface = mayBePreface(received);
      if (isPreface && received.length < PREFACE.length) return false;
      hand(socket, received, isPreface);
      return true;
    });
  }

  const isTrusted = (socket: unknown): boolean => trusted((tcpPeer.call(socket) as string | undefined) ?? '');
  if (settings.http2_cleartext !== 'prior-knowledge') {
    const upgradesToH2c = (req: IncomingMessage): boolean => isTrusted(req.socket) && asksForH2c(req);
    // node:http emits 'upgrade' only for the Upgrade requests this accepts; the rest are plain requests.
    (front as HttpServer & UpgradeGate).shouldUpgradeCallback = (req) => upgradesToH2c(req) || appUpgrade !== null;
    front.on('upgrade', (req: IncomingMessage, socket: net.Socket, head: Buffer) => {
      if (upgradesToH2c(req)) upgradeToHttp2(req, socket, head, sessions, settings.header_timeout * 1000);
      else appUpgrade!(req, socket, head);
    });
  } else if (appUpgrade !== null) front.on('upgrade', appUpgrade);
  if (settings.http2_cleartext === 'upgrade') return sessions;
  front.emit = function (this: net.Server, event: string | symbol, socket?: unknown): boolean {
    if (event === 'connection' && isTrusted(socket)) {
      peek(socket as net.Socket);
      return true;
    }
    // eslint-disable-next-line prefer-rest-params -- a rest parameter would build an array for every event
    return Reflect.apply(emit, this, arguments) as boolean;
  };
  return sessions;
}
