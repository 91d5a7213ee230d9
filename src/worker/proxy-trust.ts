// X-Forwarded-For / X-Forwarded-Proto, believed only from `forwarded_allow_ips`
// (Gunicorn's rule): anyone else could claim any address or scheme.
import type { IncomingMessage, RequestListener } from 'node:http';
import type { Http2Session } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { sessionPeer } from '../http2/session-of.js';
import { createAddressMatcher, unmapped } from '../settings/address-ranges.js';

export interface ProxyTrust {
  /**
   * The client's address for logs: the peer, or the nearest untrusted hop it
   * forwarded for. An HTTP/2 request's peer is its session's once its stream closed.
   */
  clientAddress(req: IncomingMessage, http2Session?: Http2Session): string;
  /**
   * A fetch app's listener whose Request URL carries the scheme a trusted
   * X-Forwarded-Proto names. Only the adapter sees that absolute URL: req.url,
   * which the logs and the in-flight label read, stays the target as sent.
   */
  forFetchApp(adapter: RequestListener): RequestListener;
}

export function createProxyTrust(allowed: string[]): ProxyTrust {
  const isTrusted = createAddressMatcher(allowed);

  return {
    clientAddress(req, http2Session) {
      const peer = unmapped(req.socket.remoteAddress ?? sessionPeer(http2Session) ?? '-');
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
    forFetchApp(adapter) {
      return (req, res) => {
        const asSent = req.url!;
        if (!forwardsHttps(req)) return adapter(req, res);
        // HTTP/2: the adapter builds the URL from :scheme (an absolute :path is refused).
        if (req.httpVersionMajor === 2) {
          req.headers[':scheme'] = 'https';
          return adapter(req, res);
        }
        if (!asSent.startsWith('/') || !req.headers.host) return adapter(req, res);
        req.url = `https://${req.headers.host}${asSent}`;
        // The adapter reads req.url once, as it builds the Request, before its first await.
        try {
          return adapter(req, res);
        } finally {
          req.url = asSent;
        }
      };
    },
  };

  function forwardsHttps(req: IncomingMessage): boolean {
    const proto = req.headers['x-forwarded-proto'];
    return (
      typeof proto === 'string' &&
      proto.trim().toLowerCase() === 'https' &&
      !(req.socket as TLSSocket).encrypted &&
      isTrusted(req.socket.remoteAddress ?? '')
    );
  }
}
