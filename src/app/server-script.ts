// Server scripts: apps that create their own HTTP server and call listen(), as
// every framework's built server does (Next.js standalone, Nitro, NestJS,
// `app.listen(3000)`). Like Passenger's node loader, a worker replaces
// net.Server.prototype.listen before the app loads. (node:cluster's child.js
// instead asks the primary for a handle over IPC; the result is the same, a
// server accepting on a shared socket, and neither costs anything per request.)
//
// The first HTTP(S) server (node:http, node:https or node:http2) that listens is the app's server: it accepts on
// tsgunicorn's sockets, never on the address it named. Any later one is parked:
// never bound, its listen() completes, and the worker says so once. Servers that
// are not HTTP (a raw net.Server) listen as they ask.
import type { Server } from 'node:http';
import net from 'node:net';
import { isHttp2Server } from '../http2/servers.js';

export interface CapturedServer {
  /** An http.Server, or an https.Server when the app brings its own TLS, or a node:http2 server (typed as http's: it serves the same events). */
  readonly server: Server;
  /** What the app asked for, as logs show it: ":3000", "127.0.0.1:3000", "unix:/tmp/app.sock". */
  readonly asked: string;
  /** The app created an https.Server: it terminates TLS itself. */
  readonly secure: boolean;
  /** The app's listen callback, to fire once the server accepts on tsgunicorn's socket. */
  readonly callback: (() => void) | null;
}

/** Why a server was parked: a second server of the app, one on the app's server's port (the same app), or any server of an app served from its export. */
export type ParkReason = 'second-server' | 'alias' | 'exported-app';
export type ParkedListener = (asked: string, reason: ParkReason) => void;

interface NormalizedListen {
  port?: number | string;
  host?: string;
  path?: string;
  fd?: number;
  handle?: unknown;
}

// eslint-disable-next-line @typescript-eslint/unbound-method -- only ever called through Reflect.apply with a server as `this`
const originalListen = net.Server.prototype.listen;
// Node's own parser of listen()'s many signatures (lib/net.js), exported for userland like this.
const normalizeArgs = (net as unknown as { _normalizeArgs: (args: unknown[]) => [NormalizedListen, ((...a: unknown[]) => void) | null] })
  ._normalizeArgs;
const http = process.getBuiltinModule('node:http');

let installed = false;
let state: 'capturing' | 'parking' = 'capturing';
let captured: CapturedServer | null = null;
let waiting: ((server: CapturedServer) => void)[] = [];
let onParked: ParkedListener = () => {};

/**
 * Replaces listen() for the rest of this process. Until `stopCapturing()`, the
 * first HTTP server to listen is captured; after it, every HTTP listen is parked.
 */
export function captureListen(parked: ParkedListener): void {
  onParked = parked;
  if (installed) return;
  installed = true;
  net.Server.prototype.listen = function listen(this: net.Server, ...args: unknown[]) {
    const secure = typeof (this as { setSecureContext?: unknown }).setSecureContext === 'function';
    if (!isHttpServer(this, secure)) return Reflect.apply(originalListen, this, args) as net.Server;
    const [options, callback] = normalizeArgs(args);
    const asked = describeListen(options);
    if (state === 'capturing' && !captured) {
      captured = { server: this as Server, asked, secure, callback };
      for (const resolve of waiting) resolve(captured);
      waiting = [];
      return this;
    }
    park(this, options, callback);
    onParked(asked, isAlias(options) ? 'alias' : captured ? 'second-server' : 'exported-app');
    return this;
  };
}

/** The app's server, once it listens. */
export function capturedServer(): Promise<CapturedServer> {
  return captured ? Promise.resolve(captured) : new Promise((resolve) => waiting.push(resolve));
}

export function hasCaptured(): CapturedServer | null {
  return captured;
}

/** The app is served from its exports: any HTTP server it starts from now on is parked. */
export function stopCapturing(): void {
  state = 'parking';
}

/** Listens on an inherited fd with the real listen(), whatever the app replaced. */
export function listenOnFd(server: net.Server, fd: number, backlog: number, callback: (() => void) | null = null): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // With an fd, node takes the backlog only as the second argument.
    Reflect.apply(originalListen, server, [
      { fd },
      backlog,
      () => {
        server.off('error', reject);
        resolve();
        callback?.();
      },
    ]);
  });
}

function isHttpServer(server: net.Server, secure: boolean): boolean {
  if (server instanceof http.Server) return true;
  // Only a TLS server can be an https.Server, and then node:https is already loaded.
  if (secure && server instanceof process.getBuiltinModule('node:https').Server) return true;
  return isHttp2Server(server);
}

// A parked server's listen() completes as if it had bound, so the app goes on,
// and address() reports what it asked for (frameworks read it once listening,
// as Fastify does to log and to start its servers for other addresses); it never
// accepts anything.
function park(server: net.Server, options: NormalizedListen, callback: (() => void) | null): void {
  const host = options.host ?? '::';
  const address: net.AddressInfo | string | null =
    options.path !== undefined
      ? options.path
      : { address: host, family: net.isIPv4(host) ? 'IPv4' : 'IPv6', port: Number(options.port ?? 0) };
  server.address = () => address;
  if (callback) server.once('listening', callback);
  process.nextTick(() => server.emit('listening'));
}

/**
 * Another server on the port the app's server asked for, or is served on: the
 * same app on another address (Fastify starts one for each address
 * "localhost" resolves to, at the port it was given).
 */
function isAlias(options: NormalizedListen): boolean {
  if (!captured || options.port === undefined) return false;
  const real = captured.server.address();
  const port = Number(options.port);
  return port === Number(captured.asked.slice(captured.asked.lastIndexOf(':') + 1)) || (typeof real === 'object' && real?.port === port);
}

function describeListen(options: NormalizedListen): string {
  if (options.path !== undefined) return `unix:${options.path}`;
  if (options.fd !== undefined) return `fd ${options.fd}`;
  if (options.handle !== undefined) return 'a handle';
  const port = options.port === undefined || options.port === '' ? 0 : options.port;
  const host = options.host ? (net.isIPv6(options.host) ? `[${options.host}]` : options.host) : '';
  return `${host}:${port}`;
}
