// Server scripts: apps that create their own HTTP server and call listen(), as
// every framework's built server does (Next.js standalone, Nitro, NestJS,
// `app.listen(3000)`). Like Passenger's node loader, a worker replaces
// net.Server.prototype.listen before the app loads. (node:cluster's child.js
// instead asks the primary for a handle over IPC; the result is the same, a
// server accepting on a shared socket, and neither costs anything per request.)
//
// One HTTP server of the app (node:http, node:https or node:http2) is served: the one asking for $PORT or for
// tsgunicorn's own port, else the first to listen. Its listen() really listens,
// at once, on tsgunicorn's first socket (never on the address it named), so that
// `listening`, address() and close() are Node's own; it accepts nothing until
// the worker is ready. Any other one is parked: never bound, it behaves as bound
// at the address it asked for. Raw net.Servers on a fixed address are refused:
// workers cannot share them (see refuseUnshared).
import type { Server } from 'node:http';
import net from 'node:net';
import { readFileSync, readlinkSync } from 'node:fs';
import { isHttp2Server } from '../http2/servers.js';

export interface CapturedServer {
  /** An http.Server, or an https.Server when the app brings its own TLS, or a node:http2 server (typed as http's: it serves the same events). */
  readonly server: Server;
  /** What the app asked for, as logs show it: ":3000", "127.0.0.1:3000", "unix:/tmp/app.sock". */
  readonly asked: string;
  /** The app created an https.Server: it terminates TLS itself. */
  readonly secure: boolean;
}

/**
 * Why a server was parked: a second server of the app, one on the app's
 * server's port (the same app), one asking for $PORT after another was already
 * served, or any server of an app served from its export.
 */
export type ParkReason = 'second-server' | 'alias' | 'late-main' | 'exported-app';
export type ParkedListener = (asked: string, reason: ParkReason) => void;

/** Where the app's server listens in a worker: tsgunicorn's first socket. */
export interface ServeTarget {
  fd: number;
  backlog: number;
}

export interface CaptureOptions {
  /** Null where nothing may be bound (--check-config): the app's server is only recorded. */
  target: ServeTarget | null;
  /** $PORT and tsgunicorn's own ports: a server asking for one of them is the app's main server. */
  mainPorts: number[];
  onParked: ParkedListener;
}

interface NormalizedListen {
  port?: number | string;
  host?: string;
  path?: string;
  fd?: number;
  handle?: unknown;
  backlog?: number;
}

type Listen = (this: net.Server, ...args: unknown[]) => net.Server;

/** What net.Server keeps of its own, as node's lib/net.js uses it. */
interface ServerInternals {
  _handle: ListenHandle | null;
  _pipeName?: string | undefined;
}

interface ListenHandle {
  close(): void;
  readStart?(): number;
  readStop?(): number;
  getsockname?(out: object): number;
  ref(): void;
  unref(): void;
}

// eslint-disable-next-line @typescript-eslint/unbound-method -- only ever called through Reflect.apply with a server as `this`
const originalListen = net.Server.prototype.listen as Listen;
// Node's own parser of listen()'s many signatures (lib/net.js), exported for userland like this.
const normalizeArgs = (net as unknown as { _normalizeArgs: (args: unknown[]) => [NormalizedListen, ((...a: unknown[]) => void) | null] })
  ._normalizeArgs;
const http = process.getBuiltinModule('node:http');

let installed = false;
let options: CaptureOptions = { target: null, mainPorts: [], onParked: () => {} };
let state: 'capturing' | 'parking' = 'capturing';
let captured: (CapturedServer & { request: NormalizedListen; main: boolean }) | null = null;
/** Until the first captured server's turn of the event loop ends, a server asking for a main port may still take its place. */
let decided = false;
let waiting: ((server: CapturedServer) => void)[] = [];

/**
 * Replaces listen() for the rest of this process. Until `stopCapturing()`, the
 * app's main HTTP server is captured; every other HTTP listen is parked.
 */
export function captureListen(capture: CaptureOptions): void {
  options = capture;
  if (installed) return;
  installed = true;
  net.Server.prototype.listen = function listen(this: net.Server, ...args: unknown[]) {
    const secure = typeof (this as { setSecureContext?: unknown }).setSecureContext === 'function';
    if (!isHttpServer(this, secure)) {
      refuseUnshared(this, args, listen);
      return Reflect.apply(originalListen, this, args);
    }
    const [asked, callback] = normalizeArgs(args);
    if (captured?.server === this && options.target) return listenAgain(this, args, options.target);
    const described = describeListen(asked);
    const main = isMainPort(asked);
    if (state === 'capturing' && (!captured || (!decided && main && !captured.main && (!options.target || isTcp(captured.server))))) {
      const previous = captured;
      captured = { server: this as Server, asked: described, secure, request: asked, main };
      if (options.target) listenOn(this, options.target, callback, previous?.server);
      if (previous) {
        // Node still emits its listening event (emitListeningNT).
        park(previous.server, previous.request, null, false);
        options.onParked(previous.asked, 'second-server');
      } else {
        setImmediate(decide);
      }
      return this;
    }
    park(this, asked, callback);
    options.onParked(described, reasonToPark(asked, main));
    return this;
  } as Listen;
}

/** The app's server, once it listens and no other can take its place. */
export function capturedServer(): Promise<CapturedServer> {
  return captured && decided ? Promise.resolve(captured) : new Promise((resolve) => waiting.push(resolve));
}

/** The app's server as decided so far (null before any listened). */
export function hasCaptured(): CapturedServer | null {
  return captured;
}

/** The app is served from its exports: any HTTP server it starts from now on is parked. */
export function stopCapturing(): void {
  state = 'parking';
}

/** Servers started from now on are captured again (an explicit NAME's listen() or factory). */
export function resumeCapturing(): void {
  state = 'capturing';
}

/** Listens on an inherited fd with the real listen(), whatever the app replaced. */
export function listenOnFd(server: net.Server, fd: number, backlog: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // With an fd, node takes the backlog only as the second argument.
    Reflect.apply(originalListen, server, [
      { fd },
      backlog,
      () => {
        server.off('error', reject);
        resolve();
      },
    ]);
  });
}

/** Starts accepting on the app's server, which listened with accepting paused. */
export function startAccepting(server: net.Server): void {
  (server as unknown as ServerInternals)._handle?.readStart?.();
}

function decide(): void {
  decided = true;
  for (const resolve of waiting) resolve(captured!);
  waiting = [];
}

// The one place that says which servers are the app's HTTP servers.
function isHttpServer(server: net.Server, secure: boolean): boolean {
  if (server instanceof http.Server) return true;
  // Only a TLS server can be an https.Server, and then node:https is already loaded.
  if (secure && server instanceof process.getBuiltinModule('node:https').Server) return true;
  return isHttp2Server(server);
}

/**
 * A server that is not HTTP on a fixed address (a port, a path, an fd) would be
 * bound by every worker, and by the old and new workers of a reload: the second
 * gets EADDRINUSE. node:cluster shares it by having its primary bind whatever a
 * worker asks for; tsgunicorn's master binds only what its settings say, so an
 * app cannot make it bind anything else. Refused with what to do; port 0 (a port
 * of each worker's own) binds as asked.
 */
function refuseUnshared(server: net.Server, args: unknown[], listen: Listen): void {
  const [asked] = normalizeArgs(args);
  if (asked.port !== undefined && Number(asked.port) === 0 && asked.fd === undefined && asked.handle === undefined) return;
  if (asked.port === undefined && asked.path === undefined && asked.fd === undefined && asked.handle === undefined) return;
  const kind = server.constructor.name === 'Server' ? 'net.Server' : server.constructor.name;
  const err = new Error(
    `The app listens on ${describeListen(asked)} with a ${kind} that is not HTTP, which tsgunicorn's workers cannot share: ` +
      'run that server as a service of its own, or serve it through the app\'s HTTP server (see "More than one server" in the README)',
  );
  // The stack starts at the app's listen() call.
  Error.captureStackTrace(err, listen);
  throw err;
}

/**
 * The app's server listens on tsgunicorn's socket now, as under plain node
 * (address() and `listening` are right after listen()), but accepts only once
 * the worker serves. `from` is a server that listened there first and yields its
 * place; a TCP handle moves to the new owner as node lets one (listen(handle)).
 */
function listenOn(server: net.Server, target: ServeTarget, callback: (() => void) | null, from?: net.Server): void {
  const internals = server as unknown as ServerInternals;
  if (from) {
    const handle = (from as unknown as ServerInternals)._handle;
    (from as unknown as ServerInternals)._handle = null;
    Reflect.apply(originalListen, server, callback ? [handle, target.backlog, callback] : [handle, target.backlog]);
  } else {
    Reflect.apply(originalListen, server, callback ? [{ fd: target.fd }, target.backlog, callback] : [{ fd: target.fd }, target.backlog]);
  }
  const handle = internals._handle!;
  // A unix socket listened on by fd has no name for node: address() says its path, as after listen(path).
  if (!handle.getsockname) internals._pipeName = unixSocketPath(target.fd) ?? undefined;
  // A listening handle counts as reading only after readStart: without it readStop does nothing.
  handle.readStart?.();
  handle.readStop?.();
  // close() must not close tsgunicorn's socket: only stop accepting, so that the
  // app can listen() again, as after close() under plain node.
  handle.close = () => handle.readStop?.();
}

// close() then listen() again: served on the same socket.
function listenAgain(server: net.Server, args: unknown[], target: ServeTarget): net.Server {
  if ((server as unknown as ServerInternals)._handle) return Reflect.apply(originalListen, server, args);
  const [, callback] = normalizeArgs(args);
  listenOn(server, target, callback);
  startAccepting(server);
  return server;
}

function isTcp(server: net.Server): boolean {
  return typeof (server as unknown as ServerInternals)._handle?.getsockname === 'function';
}

function isMainPort(asked: NormalizedListen): boolean {
  if (asked.port === undefined || asked.path !== undefined) return false;
  const port = Number(asked.port);
  return port > 0 && options.mainPorts.includes(port);
}

function reasonToPark(asked: NormalizedListen, main: boolean): ParkReason {
  if (!captured) return 'exported-app';
  // Before isAlias: the port it asks for is also the one the served server is served on.
  if (main && !captured.main) return 'late-main';
  return isAlias(asked) ? 'alias' : 'second-server';
}

/**
 * A parked server is never bound but behaves as bound at the address it asked
 * for, as node would report it (frameworks read it once listening, as Fastify
 * does to log and to start its servers for other addresses): `listening` is true,
 * close() works, and listen() again is refused as by node. A host name is looked
 * up as node's listen() does.
 */
function park(server: net.Server, asked: NormalizedListen, callback: (() => void) | null, emit = true): void {
  const internals = server as unknown as ServerInternals;
  const listening = () => emit && server.emit('listening');
  const bound = (where: net.AddressInfo | null) => {
    internals._handle = {
      close() {},
      ref() {},
      unref() {},
      ...(where ? { getsockname: (out: object) => (Object.assign(out, where), 0) } : {}),
    };
  };
  if (callback) server.once('listening', callback);
  if (asked.path !== undefined) {
    internals._pipeName = asked.path;
    bound(null);
    process.nextTick(listening);
    return;
  }
  const port = Number(asked.port ?? 0);
  if (!asked.host) {
    bound({ address: '::', family: 'IPv6', port });
    process.nextTick(listening);
    return;
  }
  // As under node, listening only once the host is looked up; except a server
  // that yielded its place, whose listening event node emits meanwhile.
  if (!emit) bound(null);
  process.getBuiltinModule('node:dns').lookup(asked.host, (err, ip, family) => {
    if (err) {
      internals._handle = null;
      server.emit('error', err);
      return;
    }
    bound({ address: ip, family: family === 6 ? 'IPv6' : 'IPv4', port });
    listening();
  });
}

/**
 * Another server on the port the app's server asked for, or is served on: the
 * same app on another address (Fastify starts one for each address
 * "localhost" resolves to, at the port it was given).
 */
function isAlias(asked: NormalizedListen): boolean {
  if (!captured || asked.port === undefined) return false;
  const real = captured.server.address();
  const port = Number(asked.port);
  return port === Number(captured.asked.slice(captured.asked.lastIndexOf(':') + 1)) || (typeof real === 'object' && real?.port === port);
}

/** The path of the unix socket at `fd`, from /proc (node has no getsockname for pipes), or null. */
function unixSocketPath(fd: number): string | null {
  try {
    const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1];
    // Columns: Num RefCount Protocol Flags Type St Inode Path.
    for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n')) {
      const columns = line.trim().split(/\s+/);
      if (columns[6] === inode && columns[7]) return columns[7];
    }
  } catch {
    // No /proc: address() stays null, as node's own.
  }
  return null;
}

function describeListen(asked: NormalizedListen): string {
  if (asked.path !== undefined) return `unix:${asked.path}`;
  if (asked.fd !== undefined) return `fd ${asked.fd}`;
  if (asked.handle !== undefined) return 'a handle';
  const port = asked.port === undefined || asked.port === '' ? 0 : asked.port;
  const host = asked.host ? (net.isIPv6(asked.host) ? `[${asked.host}]` : asked.host) : '';
  return `${host}:${port}`;
}
