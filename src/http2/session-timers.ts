// keepalive, header_timeout and request_timeout for HTTP/2: a session that
// opens no stream within header_timeout, or has had no stream open for keepalive
// seconds since its last one closed, gets GOAWAY and closes, as an HTTP/1.1
// connection that sends no request or stays idle is closed. A session with a
// stream open, however long, is not idle. A stream whose request body has not
// ended within request_timeout is reset (RST_STREAM CANCEL), as node:http closes
// a slow HTTP/1.1 request's connection: not answered 408, since the app, still
// reading, would then answer a stream already answered (which throws in its code).
// Per session a timer for the first stream, then one looking every keepalive
// seconds whether the session was idle all along: it goes between keepalive and
// twice keepalive after its last stream closed, and no timer is touched as
// streams come and go (re-arming one as each session fell quiet cost more than
// all the rest of this per stream). A timer per request with a body; nothing
// else per stream: the code that already follows each stream to its end (the
// request handler, stream-tracking.ts) says when one opens and closes, rather
// than a listener of this file's on every stream and on the session's 'stream'
// event (each one more closure call and listener array per stream).
import type { Http2SecureServer, Http2Server, Http2Session, ServerHttp2Stream } from 'node:http2';
import { timerDelay } from '../settings/kinds.js';
import { listenOnServer } from '../worker/serve.js';
import type { Settings } from '../settings/schema.js';

type TimerSettings = Pick<Settings, 'keepalive' | 'header_timeout' | 'request_timeout'>;

const kTimers = Symbol('tsgunicorn.sessionTimers');

function timeOutRequest(stream: ServerHttp2Stream): void {
  stream.close(process.getBuiltinModule('node:http2').constants.NGHTTP2_CANCEL);
}

/** One session's timers and the count of its streams open. */
class SessionTimers {
  private open = 0;
  /** A stream closed since the idle check last looked. */
  private closed = false;
  private first: NodeJS.Timeout | null;
  private idle: NodeJS.Timeout | null = null;
  private readonly closeIfIdle = (): void => {
    if (this.open === 0) this.session.close();
  };
  private readonly checkIdle = (): void => {
    if (this.open === 0 && !this.closed) return void this.session.close();
    this.closed = false;
    this.idle!.refresh();
  };

  constructor(
    private readonly session: Http2Session,
    private readonly idleMs: number,
    private readonly requestMs: number,
    firstStreamMs: number,
  ) {
    this.first = setTimeout(this.closeIfIdle, firstStreamMs);
  }

  /** A stream came: the session is no longer waiting for its first one. */
  private arrived(): void {
    if (this.first === null) return;
    clearTimeout(this.first);
    this.first = null;
    if (this.idleMs > 0) this.idle = setTimeout(this.checkIdle, this.idleMs);
  }

  opened(stream: ServerHttp2Stream): void {
    this.arrived();
    this.open++;
    if (this.requestMs === 0 || stream.endAfterHeaders) return;
    const timer = setTimeout(timeOutRequest, this.requestMs, stream);
    const stop = (): void => clearTimeout(timer);
    stream.once('end', stop).once('close', stop);
  }

  /** A stream refused at its headers: answered at once, it counts as one that came and closed. */
  refused(): void {
    this.arrived();
    this.open++;
    this.streamClosed();
  }

  streamClosed(): void {
    this.closed = true;
    // keepalive 0: the session goes as soon as its streams are done, not after a period.
    if (--this.open === 0 && this.idleMs === 0) setTimeout(this.closeIfIdle, 0);
  }

  stop(): void {
    if (this.first !== null) clearTimeout(this.first);
    if (this.idle !== null) clearTimeout(this.idle);
  }
}

interface WithTimers {
  [kTimers]?: SessionTimers;
}

export function applySessionTimers(server: Http2Server | Http2SecureServer, settings: TimerSettings): void {
  const idleMs = timerDelay(settings.keepalive * 1000);
  const requestMs = timerDelay(settings.request_timeout * 1000);
  const firstStreamMs = timerDelay(settings.header_timeout * 1000);
  listenOnServer(server, 'session', (session: Http2Session) => {
    const timers = new SessionTimers(session, idleMs, requestMs, firstStreamMs);
    (session as WithTimers)[kTimers] = timers;
    session.once('close', () => timers.stop());
  });
}

// Streams no tracking takes (CONNECT without a 'connect' listener, an Expect
// other than 100-continue) are answered by Node at once and never counted: a
// GOAWAY the idle check sends meanwhile lets them finish.

/** A stream the request handler or stream tracking took in and will see close. */
export function streamOpened(stream: ServerHttp2Stream): void {
  (stream.session as WithTimers | undefined)?.[kTimers]?.opened(stream);
}

export function streamClosed(session: Http2Session | undefined): void {
  (session as WithTimers | undefined)?.[kTimers]?.streamClosed();
}

export function streamRefused(stream: ServerHttp2Stream): void {
  (stream.session as WithTimers | undefined)?.[kTimers]?.refused();
}
