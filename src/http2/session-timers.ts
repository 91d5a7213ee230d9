// keepalive, header_timeout and request_timeout for HTTP/2: a session that
// opens no stream within header_timeout, or has had no stream open for keepalive
// seconds since its last one closed, gets GOAWAY and closes, as an HTTP/1.1
// connection that sends no request or stays idle is closed. A session with a
// stream open, however long, is not idle. A stream whose request body has not
// ended within request_timeout is reset (RST_STREAM CANCEL), as node:http closes
// a slow HTTP/1.1 request's connection: not answered 408, since the app, still
// reading, would then answer a stream already answered (which throws in its code). Two timers per session, the
// keepalive one re-armed as the last open stream closes; a timer per request
// with a body; nothing else per stream but a listener.
import type { Http2SecureServer, Http2Server, Http2Session, ServerHttp2Stream } from 'node:http2';
import { timerDelay } from '../settings/kinds.js';
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
  server.on('session', (session: Http2Session) => {
    let open = 0;
    const closeIfIdle = (): void => {
      if (open === 0) session.close();
    };
    let first: NodeJS.Timeout | null = setTimeout(closeIfIdle, firstStreamMs);
    let idle: NodeJS.Timeout | null = null;
    const streamClosed = (): void => {
      if (--open > 0) return;
      if (idle === null) idle = setTimeout(closeIfIdle, idleMs);
      else idle.refresh();
    };
    session.on('stream', (stream: ServerHttp2Stream, _headers: unknown, flags: number) => {
      if (first !== null) {
        clearTimeout(first);
        first = null;
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
