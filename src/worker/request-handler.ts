// The per-request path of a worker: the checks (request-checks.ts), in-flight bookkeeping, the app call,
// errors, and the access log entry. This is the hot path: no IPC, no sync I/O but a
// journal send, and nothing allocated per request that can be avoided.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { keptSession, sessionBytesSince } from '../http2/session-of.js';
import type { Logger } from '../logging/logger.js';
import type { WorkerMetrics } from '../metrics/worker-metrics.js';
import type { Settings } from '../settings/schema.js';
import type { ActivityBoard } from './activity-board.js';
import { createProxyTrust } from './proxy-trust.js';
import { createRequestChecks } from './request-checks.js';

const kStarted = Symbol('tsgunicorn.started');
// Constant for the process: read once, not on every request.
const timeOrigin = performance.timeOrigin;
const kBytesBefore = Symbol('tsgunicorn.bytesBefore');
const PLAIN_500 = { 'content-type': 'text/plain; charset=utf-8' };
const CLOSE_500 = { ...PLAIN_500, connection: 'close' };

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
  let oldest: TrackedResponse | undefined;
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
    // HTTP/2 has no Connection field (RFC 9113 §8.2.2): its compatibility API warns the app's process about one.
    res.writeHead(500, req.httpVersionMajor === 1 ? CLOSE_500 : PLAIN_500);
    res.end('Internal Server Error\n');
  }

  function listener(req: IncomingMessage, res: ServerResponse): void {
    if (!checks.admit(req, res)) return;
    const tracked = res as TrackedResponse;
    tracked[kStarted] = performance.now();
    if (accessEnabled) tracked[kBytesBefore] = req.socket.bytesWritten;
    inFlight.add(tracked);
    if (oldest === undefined) markOldest(tracked);
    board.setInFlight(inFlight.size);
    metrics.requestStarted();
    res.on('close', onClose);
    if (closeConnections && req.httpVersionMajor === 1) res.setHeader('connection', 'close');
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

  return {
    listener,
    get inFlight() {
      return inFlight.size;
    },
    startDraining() {
      closeConnections = true;
      // A response not yet begun is the last on its connection too: said in the
      // response, the client does not reuse the connection as this worker leaves.
      // (HTTP/2 sessions get GOAWAY from the worker's drain instead.)
      for (const res of inFlight) if (!res.headersSent && res.req.httpVersionMajor === 1) res.setHeader('connection', 'close');
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
function responseBytes(res: TrackedResponse, req: IncomingMessage): number {
  const declared = res.getHeader('content-length');
  if (declared !== undefined) return Number(declared) || 0;
  if (req.httpVersionMajor === 2) return sessionBytesSince(keptSession(req), res[kBytesBefore]);
  const header = (res as unknown as { _header?: string | null })._header;
  return Math.max(0, req.socket.bytesWritten - res[kBytesBefore] - (header ? Buffer.byteLength(header) : 0));
}
