// keepalive and header_timeout for HTTP/2 sessions: a session that opens no
// stream within header_timeout, or has had no stream open for keepalive seconds
// since its last one closed, gets GOAWAY and closes, as an HTTP/1.1 connection
// that sends no request or stays idle is closed. A session with a stream open,
// however long, is not idle. Two timers per session, the keepalive one re-armed
// as the last open stream closes; nothing per stream but a listener.
import type { Http2SecureServer, Http2Server, Http2Session, ServerHttp2Stream } from 'node:http2';
import { timerDelay } from '../settings/kinds.js';
import type { Settings } from '../settings/schema.js';

export function closeIdleSessions(server: Http2Server | Http2SecureServer, settings: Pick<Settings, 'keepalive' | 'header_timeout'>): void {
  const idleMs = timerDelay(settings.keepalive * 1000);
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
    session.on('stream', (stream: ServerHttp2Stream) => {
      if (first !== null) {
        clearTimeout(first);
        first = null;
      }
      open++;
      stream.on('close', streamClosed);
    });
    session.once('close', () => {
      if (first !== null) clearTimeout(first);
      if (idle !== null) clearTimeout(idle);
    });
  });
}
