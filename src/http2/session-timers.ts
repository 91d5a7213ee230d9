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
// else per stream but a listener.
import type { Http2SecureServer, Http2Server, Http2Session, ServerHttp2Stream } from 'node:http2';
import { timerDelay } from '../settings/kinds.js';
import { listenOnServer } from '../worker/serve.js';
import type { Settings } from '../settings/schema.js';

const END_STREAM = 0x1;

function timeOutRequest(stream: ServerHttp2Stream): void {
  stream.close(process.getBuiltinModule('node:http2').constants.NGHTTP2_CANCEL);
}

export function applySessionTimers(
  server: Http2Server | Http2SecureServer,
  settings: Pick<Settings, 'keepalive' | 'header_timeout' | 'request_timeout'>,
): void {
  const idleMs = timerDelay(settings.keepalive * 1000);
  const requestMs = timerDelay(settings.request_timeout * 1000);
  const firstStreamMs = timerDelay(settings.header_timeout * 1000);
  listenOnServer(server, 'session', (session: Http2Session) => {
    let open = 0;
    // A stream closed since the idle check last looked.
    let closed = false;
    const closeIfIdle = (): void => {
      if (open === 0) session.close();
    };
    let first: NodeJS.Timeout | null = setTimeout(closeIfIdle, firstStreamMs);
    let idle: NodeJS.Timeout | null = null;
    const checkIdle = (): void => {
      if (open === 0 && !closed) return void session.close();
      closed = false;
      idle!.refresh();
    };
    const streamClosed = (): void => {
      closed = true;
      // keepalive 0: the session goes as soon as its streams are done, not after a period.
      if (--open === 0 && idleMs === 0) setTimeout(closeIfIdle, 0);
    };
    session.on('stream', (stream: ServerHttp2Stream, _headers: unknown, flags: number) => {
      if (first !== null) {
        clearTimeout(first);
        first = null;
        if (idleMs > 0) idle = setTimeout(checkIdle, idleMs);
      }
      open++;
      stream.on('close', streamClosed);
      if (requestMs === 0 || flags & END_STREAM) return;
      const timer = setTimeout(timeOutRequest, requestMs, stream);
      const stop = (): void => clearTimeout(timer);
      stream.once('end', stop).once('close', stop);
    });
    session.once('close', () => {
      if (first !== null) clearTimeout(first);
      if (idle !== null) clearTimeout(idle);
    });
  });
}
