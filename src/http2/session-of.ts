// An HTTP/2 request of Node's compatibility API as tsgunicorn takes it in: its
// :scheme is the transport's, and what the access log reads of its session (its
// peer, the bytes its socket wrote) is kept. Node's compatibility request reads
// its socket through the stream, which forgets its session as it closes, before
// the access log line is written.
import type { IncomingMessage } from 'node:http';
import type { Http2Session, Http2Stream } from 'node:http2';

const kSession = Symbol('tsgunicorn.http2Session');

interface WithSession {
  [kSession]?: Http2Session | undefined;
}

export function adoptHttp2Request(req: IncomingMessage): void {
  const session = (req as unknown as { stream: Http2Stream }).stream.session;
  (req as WithSession)[kSession] = session;
  // The client's :scheme is a claim, as X-Forwarded-Proto is (Gunicorn 26.2): the
  // URL a fetch app sees says what the connection is; a trusted proxy's
  // X-Forwarded-Proto still says https (proxy-trust.ts).
  // The session's own flag: its socket is a Proxy, slow to read on every request.
  req.headers[':scheme'] = session?.encrypted ? 'https' : 'http';
}

export function keptSession(req: IncomingMessage): Http2Session | undefined {
  return (req as WithSession)[kSession];
}

/** The peer of the request's session, once its socket (Node's proxy of the stream) no longer says. */
export function keptPeer(req: IncomingMessage): string | undefined {
  const session = keptSession(req);
  return session && !session.destroyed ? session.socket.remoteAddress : undefined;
}

/**
 * A stream's bytes for the access log when it declared no Content-Length (gRPC
 * never does): what its session's socket wrote since `before`, frames and
 * concurrent streams included (Node counts no bytes per stream); 0 once the
 * session is gone.
 */
export function sessionBytesSince(session: Http2Session | undefined, before: number): number {
  return session && !session.destroyed ? Math.max(0, session.socket.bytesWritten - before) : 0;
}
