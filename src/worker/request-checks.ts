// What llhttp lets through but RFC 9112 or Gunicorn refuses, checked before the
// app sees a request: a refused request gets its status and its connection
// closes, and nothing pipelined behind it on that connection runs. Part of the
// per-request path: the raw headers are read once, and nothing is allocated.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { createHttp2Policy } from '../http2/header-policy.js';
import { adoptHttp2Request, refuseHttp2Request } from '../http2/session-of.js';
import type { Settings } from '../settings/schema.js';

const REFUSAL_TEXT: Record<number, string> = {
  400: 'Bad Request\n',
  414: 'Request-URI Too Long\n',
  431: 'Request Header Fields Too Large\n',
};
const HOST = /^host$/i;
const CONTENT_TYPE = /^content-type$/i;
const TRANSFER_ENCODING = /^transfer-encoding$/i;
// RFC 9110 §6.5.1: fields a trailer must not carry, since the request was framed
// and routed by the header section: framing, routing, and the trailer list itself.
const FORBIDDEN_TRAILER = /^(host|content-length|transfer-encoding|trailer)$/i;
// eslint-disable-next-line @typescript-eslint/unbound-method -- always called with the request as this
const incomingPush = Readable.prototype.push;

export interface RequestChecks {
  /** False when the request was refused (and answered): the app must not see it. */
  admit(req: IncomingMessage, res: ServerResponse): boolean;
}

export function createRequestChecks(
  settings: Pick<Settings, 'limit_request_line' | 'limit_request_fields' | 'limit_request_field_size'>,
): RequestChecks {
  const lineLimit = settings.limit_request_line;
  const rawHeaderLimit = settings.limit_request_fields * 2;
  const fieldLimit = settings.limit_request_field_size;
  const refusedConnections = new WeakSet<object>();
  // Until a first refusal, no request need look its connection up there.
  let anyRefused = false;
  // Set by check from the raw headers: reading req.headers would build its object for every request.
  let hasTransferEncoding = false;
  const http2Policy = createHttp2Policy(settings);

  // A version other than 1.x (§2.3: HTTP/0.9, a text "HTTP/2.0"), Transfer-Encoding
  // in HTTP/1.0 (§6.1: faulty framing, what follows may be a smuggled request),
  // the asterisk form for any method but OPTIONS (§3.2.4), more than one Host
  // (§3.2, MUST) or Content-Type (RFC 9110 §5.3: not a list, so two are a
  // conflict). Then Gunicorn's limits: 414 for the request line, 431 for the
  // header count or a field's size, counted as Gunicorn does: the field's line
  // `Name: value` with its CRLF.
  function check(req: IncomingMessage): number {
    if (req.httpVersionMajor !== 1) return 400;
    if (req.httpVersionMinor === 0 && req.headers['transfer-encoding'] !== undefined) return 400;
    if (lineLimit !== 0 && req.method!.length + req.url!.length + 10 > lineLimit) return 414;
    if (req.url === '*' && req.method !== 'OPTIONS') return 400;
    const raw = req.rawHeaders;
    if (raw.length > rawHeaderLimit) return 431;
    let hosts = 0;
    let contentTypes = 0;
    hasTransferEncoding = false;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      if (fieldLimit !== 0 && name.length + raw[i + 1]!.length + 4 > fieldLimit) return 431;
      // 'Host' as clients spell it spares the regex.
      if (name.length === 4 && (name === 'Host' || HOST.test(name)) && ++hosts > 1) return 400;
      if (name.length === 12 && CONTENT_TYPE.test(name) && ++contentTypes > 1) return 400;
      if (name.length === 17 && TRANSFER_ENCODING.test(name)) hasTransferEncoding = true;
    }
    return 0;
  }

  // Node parses the trailers into rawTrailers just before it pushes the end of the body.
  function pushCheckingTrailers(this: IncomingMessage, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk === null) {
      const raw = this.rawTrailers;
      for (let i = 0; i < raw.length; i += 2) {
        if (FORBIDDEN_TRAILER.test(raw[i]!)) {
          refuseTrailers(this);
          return false;
        }
      }
    }
    return incomingPush.call(this, chunk, encoding);
  }

  function markRefused(socket: object): void {
    refusedConnections.add(socket);
    anyRefused = true;
  }

  // A trailer with a forbidden field: the app never sees the end of the body.
  // The client gets a 400 and the connection closes, unless the app already
  // answered, in which case only closing the connection says it.
  function refuseTrailers(req: IncomingMessage): void {
    markRefused(req.socket);
    const res = (req.socket as unknown as { _httpMessage: ServerResponse | null })._httpMessage;
    if (res && !res.headersSent) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      res.end(REFUSAL_TEXT[400]);
    } else {
      req.socket.destroy();
    }
  }

  return {
    admit(req, res) {
      // A request of Node's HTTP/2 compatibility API: one stream of a session, refused alone.
      if (req.httpVersionMajor === 2 && (req as { stream?: unknown }).stream !== undefined) {
        const refused = http2Policy(req.rawHeaders);
        if (refused === 0) {
          adoptHttp2Request(req);
          return true;
        }
        refuseHttp2Request(req);
        res.writeHead(refused, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(REFUSAL_TEXT[refused]);
        return false;
      }
      // A request pipelined behind a refused one: its framing cannot be trusted
      // (it may be a body the client framed differently), so it never runs.
      if (anyRefused && refusedConnections.has(req.socket)) {
        res.destroy();
        return false;
      }
      const refused = check(req);
      if (refused !== 0) {
        markRefused(req.socket);
        res.writeHead(refused, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
        res.end(REFUSAL_TEXT[refused]);
        return false;
      }
      // Trailers arrive after the body, when the app already runs: the end of the
      // body is held back until they are checked (see pushCheckingTrailers).
      if (hasTransferEncoding) req.push = pushCheckingTrailers;
      return true;
    },
  };
}
