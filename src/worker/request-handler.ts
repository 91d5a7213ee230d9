// The per-request path of a worker: limits, in-flight bookkeeping, the app call,
// errors, and the access log entry. This is the hot path: no IPC, no sync I/O but a
// journal send, and nothing allocated per request that can be avoided.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import type { Logger } from '../logging/logger.js';
import type { WorkerMetrics } from '../metrics/worker-metrics.js';
import type { Settings } from '../settings/schema.js';
import type { ActivityBoard } from './activity-board.js';
import { createProxyTrust } from './proxy-trust.js';

const kStarted = Symbol('tsgunicorn.started');
// Constant for the process: read once, not on every request.
const timeOrigin = performance.timeOrigin;
const REFUSAL_TEXT: Record<number, string> = {
  400: 'Bad Request\n',
  414: 'Request-URI Too Long\n',
  431: 'Request Header Fields Too Large\n',
};
const kBytesBefore = Symbol('tsgunicorn.bytesBefore');
const HOST = /^host$/i;
const CONTENT_TYPE = /^content-type$/i;
const TRANSFER_ENCODING = /^transfer-encoding$/i;
// RFC 9110 §6.5.1: fields a trailer must not carry, since the request was framed
// and routed by the header section: framing, routing, and the trailer list itself.
const FORBIDDEN_TRAILER = /^(host|content-length|transfer-encoding|trailer)$/i;

interface TrackedResponse extends ServerResponse {
  [kStarted]: number;
  [kBytesBefore]: number;
}

export interface RequestHandler {
  listener: RequestListener;
  readonly inFlight: number;
  /** From now on every response closes its connection (recycling, reload, stop). */
  startDraining(): void;
  /** drain_delay: from now on health_check_path is answered 503 by tsgunicorn, not the app. */
  failHealthChecks(): void;
}

export interface RequestHandlerOptions {
  app: RequestListener;
  fetchInterface: boolean;
  settings: Settings;
  logger: Logger;
  board: ActivityBoard;
  metrics: WorkerMetrics;
  /** Called once, when the worker has served `max_requests`. */
  onMaxRequests: () => void;
}

export function createRequestHandler(options: RequestHandlerOptions): RequestHandler {
  const { app, settings, logger, board, metrics } = options;
  const inFlight = new Set<TrackedResponse>();
  const refusedConnections = new WeakSet<object>();
  let oldest: TrackedResponse | undefined;
  let served = 0;
  const maxRequests =
    settings.max_requests > 0 ? settings.max_requests + Math.floor(Math.random() * (settings.max_requests_jitter + 1)) : 0;
  let closeConnections = settings.keepalive === 0;
  let failingHealthPath: string | null = null;
  const trust = createProxyTrust(settings.forwarded_allow_ips);
  const callApp = options.fetchInterface ? trust.forFetchApp(app) : app;
  const lineLimit = settings.limit_request_line;
  const rawHeaderLimit = settings.limit_request_fields * 2;
  const fieldLimit = settings.limit_request_field_size;
  const accessEnabled = logger.accessEnabled;
  const pid = process.pid;

  function markOldest(res: TrackedResponse | undefined): void {
    oldest = res;
    if (res) board.setOldest(res.req.method ?? '', res.req.url ?? '', timeOrigin + res[kStarted]);
    else board.clearOldest();
  }

  function onClose(this: TrackedResponse): void {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the response the listener was added to
    const res = this;
    const req = res.req;
    const durationMs = performance.now() - res[kStarted];
    inFlight.delete(res);
    if (res === oldest) markOldest(inFlight.values().next().value);
    board.setInFlight(inFlight.size);
    metrics.requestFinished(req.method ?? '', res.statusCode, durationMs / 1000);
    if (accessEnabled) {
      logger.access({
        req,
        res,
        remoteAddr: trust.clientAddress(req),
        startedAt: Date.now() - durationMs,
        durationUs: Math.round(durationMs * 1000),
        bytes: responseBytes(res, req),
        pid,
      });
    }
    if (++served === maxRequests) options.onMaxRequests();
  }

  function fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    logger.error(`Error handling request ${req.method} ${req.url}`, err);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
    res.end('Internal Server Error\n');
  }

  function listener(req: IncomingMessage, res: ServerResponse): void {
    // A request pipelined behind a refused one: its framing cannot be trusted
    // (it may be a body the client framed differently), so it never runs.
    if (refusedConnections.has(req.socket)) {
      res.destroy();
      return;
    }
    const rejected = checkRequest(req);
    if (rejected !== 0) {
      refusedConnections.add(req.socket);
      res.writeHead(rejected, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      res.end(REFUSAL_TEXT[rejected]);
      return;
    }
    // Trailers arrive after the body, when the app already runs: the end of the
    // body is held back until they are checked (see pushCheckingTrailers).
    if (hasTransferEncoding) req.push = pushCheckingTrailers;
    const tracked = res as TrackedResponse;
    tracked[kStarted] = performance.now();
    if (accessEnabled) tracked[kBytesBefore] = req.socket.bytesWritten;
    inFlight.add(tracked);
    if (oldest === undefined) markOldest(tracked);
    board.setInFlight(inFlight.size);
    metrics.requestStarted();
    res.on('close', onClose);
    if (closeConnections) res.setHeader('connection', 'close');
    if (failingHealthPath !== null && isPath(req.url!, failingHealthPath)) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('Draining\n');
      return;
    }
    try {
      const result = callApp(req, res) as unknown;
      if (result instanceof Promise) result.catch((err: unknown) => fail(req, res, err));
    } catch (err) {
      fail(req, res, err);
    }
  }

  // Set by checkRequest from the raw headers: reading req.headers would build its object for every request.
  let hasTransferEncoding = false;

  // What llhttp lets through but RFC 9112 or Gunicorn refuses, with 400: a
  // version other than 1.x (§2.3: HTTP/0.9, a text "HTTP/2.0"), Transfer-Encoding
  // in HTTP/1.0 (§6.1: faulty framing, what follows may be a smuggled request),
  // the asterisk form for any method but OPTIONS (§3.2.4), more than one Host
  // (§3.2, MUST) or Content-Type (RFC 9110 §5.3: not a list, so two are a
  // conflict). Then Gunicorn's limits: 414 for the request line, 431 for the
  // header count or a field's size, counted as Gunicorn does: the field's line
  // `Name: value` with its CRLF.
  function checkRequest(req: IncomingMessage): number {
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

  // A trailer with a forbidden field: the app never sees the end of the body.
  // The client gets a 400 and the connection closes, unless the app already
  // answered, in which case only closing the connection says it.
  function refuseTrailers(req: IncomingMessage): void {
    refusedConnections.add(req.socket);
    const res = (req.socket as unknown as { _httpMessage: ServerResponse | null })._httpMessage;
    if (res && !res.headersSent) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      res.end(REFUSAL_TEXT[400]);
    } else {
      req.socket.destroy();
    }
  }

  return {
    listener,
    get inFlight() {
      return inFlight.size;
    },
    startDraining() {
      closeConnections = true;
      // A response not yet begun is the last on its connection too: said in the
      // response, the client does not reuse the connection as this worker leaves.
      for (const res of inFlight) if (!res.headersSent) res.setHeader('connection', 'close');
    },
    failHealthChecks() {
      closeConnections = true;
      failingHealthPath = settings.health_check_path;
    },
  };
}

// eslint-disable-next-line @typescript-eslint/unbound-method -- always called with the request as this
const incomingPush = Readable.prototype.push;
const isPath = (url: string, path: string): boolean =>
  url.startsWith(path) && (url.length === path.length || url.charCodeAt(path.length) === 0x3f); // '?'

// The body bytes sent: Content-Length when declared, else what the socket wrote
// for this response minus its header block (chunk framing included).
function responseBytes(res: TrackedResponse, req: IncomingMessage): number {
  const declared = res.getHeader('content-length');
  if (declared !== undefined) return Number(declared) || 0;
  const header = (res as unknown as { _header?: string | null })._header;
  return Math.max(0, req.socket.bytesWritten - res[kBytesBefore] - (header ? Buffer.byteLength(header) : 0));
}
