// The per-request path of a worker: limits, in-flight bookkeeping, the app call,
// errors, and the access log entry. This is the hot path: no IPC, no sync I/O but a
// journal send, and nothing allocated per request that can be avoided.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../logging/logger.js';
import type { WorkerMetrics } from '../metrics/worker-metrics.js';
import type { Settings } from '../settings/schema.js';
import type { ActivityBoard } from './activity-board.js';
import { createProxyTrust } from './proxy-trust.js';

const kStarted = Symbol('tsgunicorn.started');
const kBytesBefore = Symbol('tsgunicorn.bytesBefore');

interface TrackedResponse extends ServerResponse {
  [kStarted]: number;
  [kBytesBefore]: number;
}

export interface RequestHandler {
  listener: RequestListener;
  readonly inFlight: number;
  /** From now on every response closes its connection (recycling, reload, stop). */
  startDraining(): void;
}

export interface RequestHandlerOptions {
  app: RequestListener;
  fetchInterface: boolean;
  settings: Settings;
  logger: Logger;
  board: ActivityBoard;
  metrics: WorkerMetrics | null;
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
  const trust = createProxyTrust(settings.forwarded_allow_ips);
  const lineLimit = settings.limit_request_line;
  const rawHeaderLimit = settings.limit_request_fields * 2;
  const fieldLimit = settings.limit_request_field_size;
  const accessEnabled = logger.accessEnabled;
  const pid = process.pid;

  function markOldest(res: TrackedResponse | undefined): void {
    oldest = res;
    if (res) board.setOldest(res.req.method ?? '', res.req.url ?? '', performance.timeOrigin + res[kStarted]);
    else board.clearOldest();
  }

  function onClose(this: TrackedResponse): void {
    const res = this;
    const req = res.req;
    const durationMs = performance.now() - res[kStarted];
    inFlight.delete(res);
    if (res === oldest) markOldest(inFlight.values().next().value);
    board.setInFlight(inFlight.size);
    metrics?.requestFinished(req.method ?? '', res.statusCode, durationMs / 1000);
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
    const rejected = checkLimits(req);
    if (rejected !== 0) {
      res.writeHead(rejected, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      res.end(rejected === 414 ? 'Request-URI Too Long\n' : 'Request Header Fields Too Large\n');
      return;
    }
    const tracked = res as TrackedResponse;
    tracked[kStarted] = performance.now();
    if (accessEnabled) tracked[kBytesBefore] = req.socket.bytesWritten;
    inFlight.add(tracked);
    if (oldest === undefined) markOldest(tracked);
    board.setInFlight(inFlight.size);
    metrics?.requestStarted();
    res.on('close', onClose);
    if (closeConnections) res.setHeader('connection', 'close');
    if (options.fetchInterface) trust.applyForwardedProto(req);
    try {
      const result = app(req, res) as unknown;
      if (result instanceof Promise) result.catch((err: unknown) => fail(req, res, err));
    } catch (err) {
      fail(req, res, err);
    }
  }

  // Gunicorn's limits: 414 for the request line, 431 for the header count or a field's size.
  function checkLimits(req: IncomingMessage): number {
    if (lineLimit !== 0 && req.method!.length + req.url!.length + 10 > lineLimit) return 414;
    const raw = req.rawHeaders;
    if (raw.length > rawHeaderLimit) return 431;
    if (fieldLimit !== 0) {
      for (let i = 0; i < raw.length; i += 2) {
        if (raw[i]!.length + raw[i + 1]!.length + 2 > fieldLimit) return 431;
      }
    }
    return 0;
  }

  return {
    listener,
    get inFlight() {
      return inFlight.size;
    },
    startDraining() {
      closeConnections = true;
    },
  };
}

// The body bytes sent: Content-Length when declared, else what the socket wrote
// for this response minus its header block (chunk framing included).
function responseBytes(res: TrackedResponse, req: IncomingMessage): number {
  const declared = res.getHeader('content-length');
  if (declared !== undefined) return Number(declared) || 0;
  const header = (res as unknown as { _header?: string | null })._header;
  return Math.max(0, req.socket.bytesWritten - res[kBytesBefore] - (header ? Buffer.byteLength(header) : 0));
}
