// node:http2's servers. Node exports no class for them, so they are known by the
// prototypes of two throwaway instances, made once node:http2 is asked about.
import type net from 'node:net';

let prototypes: { plain: object; secure: object; close: (this: net.Server) => void } | null = null;

function http2Prototypes(): NonNullable<typeof prototypes> {
  if (prototypes) return prototypes;
  const http2 = process.getBuiltinModule('node:http2');
  const plain = Object.getPrototypeOf(http2.createServer()) as { close: (this: net.Server) => void };
  const secure = Object.getPrototypeOf(http2.createSecureServer()) as object;
  prototypes = { plain, secure, close: plain.close };
  return prototypes;
}

/** A server from http2.createServer or http2.createSecureServer (or a subclass of either). */
export function isHttp2Server(server: net.Server): boolean {
  const { plain, secure } = http2Prototypes();
  return Object.prototype.isPrototypeOf.call(plain, server) || Object.prototype.isPrototypeOf.call(secure, server);
}

/**
 * Sends GOAWAY on every session of the server (RFC 9113 §6.8): the client opens
 * no new stream on it, the streams it has finish, then the session closes. This
 * is node:http2's own close(), which also stops accepting, as net's close does.
 */
export function goAwayAll(server: net.Server): void {
  http2Prototypes().close.call(server);
}
