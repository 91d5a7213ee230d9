// What the access log reads of an HTTP/2 request's session (its peer, the bytes
// its socket wrote). Node's compatibility request reads its socket through the
// stream, which forgets its session as it closes, before the access log line is
// written: the session is kept on the request as it arrives.
import type { IncomingMessage } from 'node:http';
import type { Http2Session, Http2Stream } from 'node:http2';

const kSession = Symbol('tsgunicorn.http2Session');

interface WithSession {
  [kSession]?: Http2Session | undefined;
}

export function keepSession(req: IncomingMessage): void {
  (req as WithSession)[kSession] = (req as unknown as { stream: Http2Stream }).stream.session;
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
