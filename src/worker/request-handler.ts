// The per-request path of a worker: the checks (request-checks.ts), in-flight bookkeeping, the app call,
// errors, and the access log entry. This is the hot path: no IPC, no sync I/O but a
// journal send, and nothing allocated per request that can be avoided.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Http2Session } from 'node:http2';
import { performance } from 'node:perf_hooks';
import { sessionBytesSince, sessionOf } from '../http2/session-of.js';
import { streamClosed } from '../http2/session-timers.js';
import type { Logger } from '../logging/logger.js';
import type { WorkerMetrics } from '../metrics/worker-metrics.js';
import type { Settings } from '../settings/schema.js';
import type { ActivityBoard } from './activity-board.js';
import { createProxyTrust } from './proxy-trust.js';
import { createRequestChecks } from './request-checks.js';

// The request clock, in milliseconds: process.hrtime, the same monotonic clock
// as performance.now(), whose receiver check (a wrapper, a rest array, a
// hasOwnProperty) costs more than reading the clock. Taken at load, so an app's
// fake timers do not reach it.
const hrtime = process.hrtime;
const nowMs = (): number => {
  const time = hrtime();
  return time[0] * 1e3 + time[1] / 1e6;
};
// Adds to the clock's reading to give epoch milliseconds. Constant for the process: read once.
const epochOffset = performance.timeOrigin + performance.now() - nowMs();
// Every HTTP/2 peer lets a stream send this much before its first WINDOW_UPDATE unless its SETTINGS say
// less (RFC 9113 §6.9.2): a response this small needs nothing more from the client.
const HTTP2_INITIAL_WINDOW = 65_535;
const PLAIN_500 = { 'content-type': 'text/plain; charset=utf-8' };
const CLOSE_500 = { ...PLAIN_500, connection: 'close' };

/**
 * A request in flight past its app call, linked in start order: the oldest is the head. Linked through its own
 * fields rather than kept in a Set, whose hash table grows and shrinks as the count swings under load, and whose
 * add gives every response an identity hash. The response's 'close' listener holds its entry: a property on the
 * response would give Node's own ServerResponse objects a second shape, on every request.
 */
class InFlight {
  prev: InFlight | null = null;
  next: InFlight | null = null;
  constructor(
    readonly res: ServerResponse,
    readonly started: number,
    /** The socket's bytes written before this response: what the access log subtracts. */
    readonly bytesBefore: number,
    /** HTTP/2: its stream's session, whose idle check counts the stream and whose peer and bytes the access log reads. */
    readonly http2Session: Http2Session | undefined,
  ) {}
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
  let oldest: InFlight | null = null;
  let newest: InFlight | null = null;
  let inFlight = 0;
  // App calls running now: more than one only when an app hands a request to this listener from within its own
  // call (server.emit('request', ...)). A request is linked only once its call returned.
  let calling = 0;
  let served = 0;
  const maxRequests =
    settings.max_requests > 0 ? settings.max_requests + Math.floor(Math.random() * (settings.max_requests_jitter + 1)) : 0;
  let closeConnections = settings.keepalive === 0;
  let failingHealthPath: string | null = null;
  const trust = createProxyTrust(settings.forwarded_allow_ips);
  const callApp = options.fetchInterface ? trust.forFetchApp(app) : app;
  const checks = createRequestChecks(settings);
  const accessEnabled = logger.accessEnabled;
  const pid = process.pid;

  function showOldest(): void {
    if (oldest) board.setOldest(oldest.res.req.method ?? '', oldest.res.req.url ?? '', epochOffset + oldest.started);
    else board.clearOldest();
  }

  /** Links a request whose response outlives its app call, in start order, until its response closes. */
  function track(entry: InFlight): void {
    // A request the app handed to this listener from within its own call started later, yet may be linked first.
    let before = newest;
    while (before !== null && before.started > entry.started) before = before.prev;
    const after = before ? before.next : oldest;
    entry.prev = before;
    entry.next = after;
    if (before) before.next = entry;
    else oldest = entry;
    if (after) after.prev = entry;
    else newest = entry;
    // Added once the app ran ('close' always comes later): an APM agent binds the
    // response to its span as the request passes it, so this listener runs in
    // that span's context, where the access log finds the trace (trace-context.ts).
    entry.res.on('close', () => finished(entry));
  }

  function finished(entry: InFlight): void {
    const res = entry.res;
    const req = res.req;
    const durationMs = nowMs() - entry.started;
    const { prev, next } = entry;
    if (prev) prev.next = next;
    else oldest = next;
    if (next) next.prev = prev;
    else newest = prev;
    // A response the app keeps must not keep its neighbours (and theirs) alive.
    entry.prev = entry.next = null;
    board.setInFlight(--inFlight);
    if (prev === null) showOldest();
    count(req, res, durationMs, entry.http2Session);
    if (accessEnabled) {
      logger.access({
        req,
        res,
        remoteAddr: trust.clientAddress(req, entry.http2Session),
        startedAt: Date.now() - durationMs,
        durationUs: Math.round(durationMs * 1000),
        bytes: responseBytes(res, req, entry.bytesBefore, entry.http2Session),
        pid,
      });
    }
  }

  /** A response finished within its app call, never linked: only the board, the metrics and the count. */
  function finishedInCall(req: IncomingMessage, res: ServerResponse, started: number, http2Session: Http2Session | undefined): void {
    const durationMs = nowMs() - started;
    board.setInFlight(--inFlight);
    // The board showed this request unless an older one, or an outer call's, was there; else it shows what is
    // oldest now (a request handed over from within this call and still in flight), or none.
    if (calling === 0 && (oldest === null || oldest.started > started)) showOldest();
    count(req, res, durationMs, http2Session);
  }

  /** Every finished request, linked or not: its HTTP/2 session's idle check, the metrics and max_requests. */
  function count(req: IncomingMessage, res: ServerResponse, durationMs: number, http2Session: Http2Session | undefined): void {
    if (http2Session !== undefined) streamClosed(http2Session);
    metrics.requestFinished(req.method ?? '', res.statusCode, durationMs / 1000);
    if (++served === maxRequests) options.onMaxRequests();
  }

  function fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    logger.error(`Error handling request ${req.method} ${req.url}`, err);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // HTTP/2 has no Connection field (RFC 9113 §8.2.2): its compatibility API warns the app's process about one.
    res.writeHead(500, req.httpVersionMajor === 1 ? CLOSE_500 : PLAIN_500);
    res.end('Internal Server Error\n');
  }

  function listener(req: IncomingMessage, res: ServerResponse): void {
    if (!checks.admit(req, res)) return;
    const started = nowMs();
    // On the board before the app runs, so that the watchdog names this request if the call never returns,
    // unless an older request is there: a linked one, or the one whose app call handed this one over.
    board.setInFlight(++inFlight);
    if (oldest === null && calling === 0) board.setOldest(req.method ?? '', req.url ?? '', epochOffset + started);
    metrics.requestStarted();
    const bytesBefore = accessEnabled ? req.socket.bytesWritten : 0;
    // Before the app runs: a stream it destroys forgets its session at once, and the session counts it open.
    const http2Session = req.httpVersionMajor === 2 ? sessionOf(req) : undefined;
    if (closeConnections && req.httpVersionMajor === 1) res.setHeader('connection', 'close');
    calling++;
    if (failingHealthPath !== null && isPath(req.url!, failingHealthPath)) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('Draining\n');
    } else {
      try {
        const result = callApp(req, res) as unknown;
        if (result instanceof Promise) result.catch((err: unknown) => fail(req, res, err));
      } catch (err) {
        fail(req, res, err);
      }
    }
    calling--;
    // A response the app ended in this call, and whose bytes need nothing more
    // from the client, is finished: its 'close' would say so a moment later, at
    // the cost of a listener and an entry on every response (on HTTP/2, most of
    // what tsgunicorn added to a stream's CPU). HTTP/1: the socket took it
    // whole. HTTP/2: it fits the stream's initial flow-control window; its
    // session's idle check counts the stream closed now, and a GOAWAY from that
    // check lets it finish. Not with the access log, which reads the APM agent's
    // span in that listener (see track).
    if (
      !accessEnabled &&
      res.writableEnded &&
      (http2Session === undefined ? res.writableLength === 0 : res.writableLength <= HTTP2_INITIAL_WINDOW)
    )
      finishedInCall(req, res, started, http2Session);
    else track(new InFlight(res, started, bytesBefore, http2Session));
  }

  return {
    listener,
    get inFlight() {
      return inFlight;
    },
    startDraining() {
      closeConnections = true;
      // A response not yet begun is the last on its connection too: said in the
      // response, the client does not reuse the connection as this worker leaves.
      // (HTTP/2 sessions get GOAWAY from the worker's drain instead.)
      for (let entry = oldest; entry; entry = entry.next)
        if (!entry.res.headersSent && entry.res.req.httpVersionMajor === 1) entry.res.setHeader('connection', 'close');
    },
    failHealthChecks() {
      closeConnections = true;
      failingHealthPath = settings.health_check_path;
    },
  };
}

const isPath = (url: string, path: string): boolean =>
  url.startsWith(path) && (url.length === path.length || url.charCodeAt(path.length) === 0x3f); // '?'

// The body bytes sent: Content-Length when declared, else what the socket wrote
// for this response minus its header block (chunk framing included); HTTP/2: see sessionBytesSince.
function responseBytes(res: ServerResponse, req: IncomingMessage, bytesBefore: number, http2Session: Http2Session | undefined): number {
  const declared = res.getHeader('content-length');
  if (declared !== undefined) return Number(declared) || 0;
  if (req.httpVersionMajor === 2) return sessionBytesSince(http2Session, bytesBefore);
  const header = (res as unknown as { _header?: string | null })._header;
  return Math.max(0, req.socket.bytesWritten - bytesBefore - (header ? Buffer.byteLength(header) : 0));
}
