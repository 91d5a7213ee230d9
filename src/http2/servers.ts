// node:http2's servers. Node exports no class for them, so they are known by the
// prototypes of two throwaway instances, made once node:http2 is asked about.
import type { Http2Session } from 'node:http2';
import type net from 'node:net';
import { listenOnServer } from '../worker/serve.js';

let prototypes: { plain: object; secure: object } | null = null;

function http2Prototypes(): NonNullable<typeof prototypes> {
  if (prototypes) return prototypes;
  const http2 = process.getBuiltinModule('node:http2');
  prototypes = {
    plain: Object.getPrototypeOf(http2.createServer()) as object,
    secure: Object.getPrototypeOf(http2.createSecureServer()) as object,
  };
  return prototypes;
}

/** A server from http2.createServer or http2.createSecureServer (or a subclass of either). */
export function isHttp2Server(server: net.Server): boolean {
  const { plain, secure } = http2Prototypes();
  return Object.prototype.isPrototypeOf.call(plain, server) || Object.prototype.isPrototypeOf.call(secure, server);
}

interface Sessions {
  open: Set<Http2Session>;
  draining: boolean;
}

const tracked = new WeakMap<net.Server, Sessions>();

/** Keeps the open sessions of an HTTP/2 server, which goAwayAll tells to go. Returns the server. */
export function trackSessions<S extends net.Server>(server: S): S {
  const sessions: Sessions = { open: new Set(), draining: false };
  tracked.set(server, sessions);
  listenOnServer(server, 'session', (session: Http2Session) => {
    // A connection accepted as the drain began (h2c still reading its preface, say) goes too.
    if (sessions.draining) return void session.close();
    sessions.open.add(session);
    session.once('close', () => sessions.open.delete(session));
  });
  return server;
}

/**
 * GOAWAY (NO_ERROR) on every session, with the last stream processed
 * (node:http2's session.close()): the streams up to it finish, the session then
 * closes, and the client sends later ones elsewhere. Streams the client sent
 * before it read the frame are never processed (nghttp2 ignores them), which
 * makes them safe to retry (RFC 9113 §6.8, §8.7). The graceful two-step GOAWAY
 * of §6.8 (the largest stream id first, the last processed after a PING) is out
 * of reach: node:http2 does not expose nghttp2's shutdown notice, and any GOAWAY
 * it sends makes nghttp2 ignore every later stream. Stopping to accept is the
 * caller's, before this.
 */
export function goAwayAll(server: net.Server): void {
  const sessions = tracked.get(server)!;
  sessions.draining = true;
  for (const session of sessions.open) session.close();
}
