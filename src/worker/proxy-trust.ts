// X-Forwarded-For / X-Forwarded-Proto, believed only from `forwarded_allow_ips`
// (Gunicorn's rule): anyone else could claim any address or scheme.
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { createAddressMatcher, unmapped } from '../settings/address-ranges.js';

export interface ProxyTrust {
  /** The client's address for logs: the peer, or the nearest untrusted hop it forwarded for. */
  clientAddress(req: IncomingMessage): string;
  /** For fetch apps, whose Request URL carries the scheme: honour a trusted X-Forwarded-Proto. */
  applyForwardedProto(req: IncomingMessage): void;
}

export function createProxyTrust(allowed: string[]): ProxyTrust {
  const isTrusted = createAddressMatcher(allowed);

  return {
    clientAddress(req) {
      const peer = unmapped(req.socket.remoteAddress ?? '-');
      const forwarded = req.headers['x-forwarded-for'];
      if (typeof forwarded !== 'string' || !isTrusted(peer)) return peer;
      // Walk from the nearest hop back: each trusted proxy vouches for the one before it.
      const hops = forwarded.split(',');
      for (let i = hops.length - 1; i >= 0; i--) {
        const hop = hops[i]!.trim();
        if (hop !== '' && (i === 0 || !isTrusted(hop))) return unmapped(hop);
      }
      return peer;
    },
    applyForwardedProto(req) {
      const proto = req.headers['x-forwarded-proto'];
      if (typeof proto !== 'string' || (req.socket as TLSSocket).encrypted || !isTrusted(req.socket.remoteAddress ?? '')) return;
      if (proto.trim().toLowerCase() === 'https' && req.url?.startsWith('/') && req.headers.host) {
        req.url = `https://${req.headers.host}${req.url}`;
      }
    },
  };
}
