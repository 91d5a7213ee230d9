// Puts one HTTP server on all of tsgunicorn's listening sockets with tsgunicorn's
// settings: a server of our own around an exported app, or the server a server
// script created. It accepts on the first socket itself; a plain net.Server on
// each other socket hands its connections over, so every connection meets the
// same request handling, TLS and upgrade listeners.
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import net from 'node:net';
import { listenOnFd, startAccepting } from '../app/server-script.js';
import { controlAccepting } from './accepting.js';
import { timerDelay } from '../settings/kinds.js';
import type { Settings } from '../settings/schema.js';

/** The servers to stop accepting on when draining: the HTTP server first. */
export interface Serving {
  http: Server;
  servers: net.Server[];
}

/**
 * The settings a server applies per connection and per request. On the app's own
 * server (a server script's) they are pinned: a framework that sets its own
 * afterwards (Fastify's keepAliveTimeout, `server.keepAliveTimeout = 65000` after
 * listen) does not override them. Pinned means accessors on the object, which
 * turn its properties into a dictionary that V8 reads more slowly on every
 * connection: tsgunicorn's own server, which the app never holds, gets plain values.
 */
export function applyServerSettings(server: Server, settings: Settings, pinned: boolean): void {
  const values: Record<string, number | boolean | undefined> = {
    // Node times an idle connection out at keepAliveTimeout + keepAliveTimeoutBuffer (1 s).
    keepAliveTimeout: timerDelay(settings.keepalive * 1000 + 1000) - 1000,
    // The whole request must come within request_timeout, so its headers must too.
    // (Node swaps the two when headersTimeout is the longer, which made a 3 s
    // request_timeout a 20 s one for a slow body.)
    headersTimeout: Math.min(settings.header_timeout, settings.request_timeout || Infinity) * 1000,
    requestTimeout: settings.request_timeout * 1000,
    // Node's parser caps the request line and headers together; the request
    // handler then applies Gunicorn's per-line and per-field limits with 414/431.
    maxHeaderSize: Math.max(16384, settings.limit_request_line + settings.limit_request_field_size + 4096),
    // One more than allowed, so that "too many" is visible to the request handler.
    maxHeadersCount: settings.limit_request_fields + 1,
    noDelay: true,
    // Node's own limit accepts a connection and then resets it: max_connections
    // pauses accepting instead (accepting.ts), whatever the app sets.
    maxConnections: undefined,
    // Node enforces both timeouts from a sweep that runs every 30 s by default, so
    // a 3 s header_timeout would let a slowloris hold its socket for up to 33 s.
    // A quarter of the shortest timeout (at most 1 s) keeps the overshoot small.
    connectionsCheckingInterval: Math.min(
      1000,
      ...[settings.header_timeout, settings.request_timeout].filter((t) => t > 0).map((t) => t * 250),
    ),
  };
  if (!pinned) {
    Object.assign(server, values);
    return;
  }
  for (const [key, value] of Object.entries(values)) {
    Object.defineProperty(server, key, { get: () => value, set: () => {}, configurable: true, enumerable: true });
  }
  // The app's server listened before this (server-script.ts), when node started its
  // sweep of the header and request timeouts at the interval it had then, 30 s:
  // node's own 'listening' listener restarts it at ours.
  if (server.listening)
    for (const listener of server.listeners('listening')) if (listener.name === 'setupConnectionsTracking') listener.call(server);
}

type Emit = (this: Server, event: string | symbol, ...args: unknown[]) => boolean;
type Listener = (arg: unknown) => void;

// tsgunicorn's listeners on the app's own servers (interceptRequests), by event.
const unseenListeners = new WeakMap<net.Server, Map<string | symbol, Listener[]>>();

/**
 * Listens to a server for tsgunicorn. On the app's own server (interceptRequests) the listener is called from the
 * server's emit, after the app's listeners, and is not one of its listeners: the app, or grpc-js, counts and lists
 * the ones it added, as under plain node. On a server of tsgunicorn's, it is a listener like any other.
 */
export function listenOnServer<T>(server: net.Server, event: string, listener: (arg: T) => void): void {
  const unseen = unseenListeners.get(server);
  if (unseen === undefined) server.on(event, listener);
  else unseen.set(event, [...(unseen.get(event) ?? []), listener as Listener]);
}

/**
 * Routes the server's 'request' events through the listener `wrap(app)` makes
 * (tsgunicorn's per-request services, once per request), where app reaches the
 * app's listeners the way node's server does: through the server's emit as it is
 * at that moment. That is the prototype's (http.Server.prototype.emit, or https's),
 * which APM agents wrap (OpenTelemetry, dd-trace, New Relic), before or after
 * this server exists; or an emit the app set on the server itself before listening.
 */
export function interceptRequests<T extends { listener: RequestListener }>(server: Server, wrap: (app: RequestListener) => T): T {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- always called with the server as this
  const own = Object.hasOwn(server, 'emit') ? (server.emit as Emit) : null;
  const proto = Object.getPrototypeOf(server) as { emit: Emit };
  const app: RequestListener = (req, res) => {
    (own ?? proto.emit).call(server, 'request', req, res);
  };
  const wrapped = wrap(app);
  const listener = wrapped.listener;
  const unseen = new Map<string | symbol, Listener[]>();
  unseenListeners.set(server, unseen);
  server.emit = function (this: Server, event: string | symbol, a?: unknown, b?: unknown): boolean {
    if (event === 'request') {
      listener(a as IncomingMessage, b as ServerResponse);
      return true;
    }
    const emit = own ?? proto.emit;
    // 'connection' (one argument) comes with every connection: passed on
    // without materializing `arguments`; other events keep their exact arguments.
    const listened =
      arguments.length === 2
        ? emit.call(this, event, a)
        : // eslint-disable-next-line prefer-rest-params -- a rest parameter would build an array for every event
          (Reflect.apply(emit, this, arguments) as boolean);
    const ours = unseen.get(event);
    if (ours !== undefined) for (const handler of ours) handler(a);
    return listened;
  };
  return wrapped;
}

export async function serveOnSockets(
  server: Server,
  firstFd: number,
  count: number,
  settings: Settings,
  onPause: () => void,
): Promise<Serving> {
  const servers: net.Server[] = [server];
  // A server script's server already listens there (server-script.ts), not yet accepting.
  if (server.listening) startAccepting(server);
  else await listenOnFd(server, firstFd, settings.backlog);
  for (let i = 1; i < count; i++) {
    const feeder = net.createServer({ noDelay: true }, (socket) => server.emit('connection', socket));
    await listenOnFd(feeder, firstFd + i, settings.backlog);
    servers.push(feeder);
  }
  controlAccepting(servers, settings.max_connections, onPause);
  return { http: server, servers };
}
