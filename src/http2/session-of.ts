// An HTTP/2 request of Node's compatibility API as tsgunicorn takes it in: its
// :scheme is the transport's, its stream counts as open in its session's idle
// check (session-timers.ts), and what the access log reads of its session (its
// peer, the bytes its socket wrote) is read from the session the request handler
// keeps. Node's compatibility request reads its socket through the stream, which
// forgets its session as it closes, before the access log line is written.
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest, Http2Session } from 'node:http2';
import { streamOpened, streamRefused } from './session-timers.js';

/** The request's session while its stream is open (the request handler keeps it for the access log). */
export function sessionOf(req: IncomingMessage): Http2Session | undefined {
  return (req as unknown as Http2ServerRequest).stream.session;
}

export function adoptHttp2Request(req: IncomingMessage): void {
  const stream = (req as unknown as Http2ServerRequest).stream;
  streamOpened(stream);
  // The client's :scheme is a claim, as X-Forwarded-Proto is (Gunicorn 26.2): the
  // URL a fetch app sees says what the connection is; a trusted proxy's
  // X-Forwarded-Proto still says https (proxy-trust.ts).
  // The session's own flag: its socket is a Proxy, slow to read on every request.
  req.headers[':scheme'] = stream.session?.encrypted ? 'https' : 'http';
}

/** A request the header policy refused: its stream still came and closes, for the session's idle check. */
export function refuseHttp2Request(req: IncomingMessage): void {
  streamRefused((req as unknown as Http2ServerRequest).stream);
}

/** The peer of a session, once the request's socket (Node's proxy of the stream) no longer says. */
export function sessionPeer(session: Http2Session | undefined): string | undefined {
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
