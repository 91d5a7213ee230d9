// The per-request services for HTTP/2 streams that no compatibility request
// stands for: a server script listening to the server's 'stream' event itself,
// as @grpc/grpc-js does. Requests through Node's compatibility API (a 'request'
// listener) go through the worker's request handler instead, like HTTP/1.1
// ones. Each stream meets the header policy, counts in flight and on the
// activity board, in the metrics and towards max_requests, in its session's
// idle check (session-timers.ts), and gets its access log line (HTTP/2.0) when
// it closes.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2Session, IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../logging/logger.js';
import type { WorkerMetrics } from '../metrics/worker-metrics.js';
import type { Settings } from '../settings/schema.js';
import type { ActivityBoard } from '../worker/activity-board.js';
import { createProxyTrust } from '../worker/proxy-trust.js';
import { createHttp2Policy } from './header-policy.js';
import { sessionBytesSince } from './session-of.js';
import { streamClosed, streamOpened, streamRefused } from './session-timers.js';

const REFUSAL_TEXT: Record<number, string> = {
  400: 'Bad Request\n',
  414: 'Request-URI Too Long\n',
  431: 'Request Header Fields Too Large\n',
};
const timeOrigin = performance.timeOrigin;

/** What the access log and proxy trust read of a request, for a stream. */
class StreamRequest {
  readonly httpVersion = '2.0';
  readonly method: string;
  readonly url: string;
  readonly socket: { remoteAddress: string | undefined; encrypted: boolean };
  readonly startedAt = performance.now();
  readonly bytesBefore: number;
  readonly session: Http2Session | undefined;
  statusCode = 0;
  private sent: OutgoingHttpHeaders | undefined;

  constructor(
    readonly stream: ServerHttp2Stream,
    readonly headers: IncomingHttpHeaders,
    logged: boolean,
  ) {
    this.method = headers[':method'] ?? '';
    this.url = headers[':path'] ?? '';
    this.session = stream.session!;
    // The session's socket is a Proxy, slow to read: only the access log needs the peer and the bytes written.
    const socket = logged ? this.session.socket : undefined;
    this.socket = { remoteAddress: socket?.remoteAddress, encrypted: this.session.encrypted === true };
    this.bytesBefore = socket?.bytesWritten ?? 0;
  }

  /** Reads the response as the stream closes, while its session is still there. */
  finish(): number {
    // None when the stream was reset before the app answered (the client
    // cancelled, request_timeout): logged with status 0.
    this.sent = this.stream.sentHeaders;
    this.statusCode = Number(this.sent?.[':status'] ?? 0);
    const declared = this.sent?.['content-length'];
    return declared !== undefined ? Number(declared) || 0 : sessionBytesSince(this.session, this.bytesBefore);
  }

  getHeader(name: string): OutgoingHttpHeaders[string] {
    return this.sent?.[name];
  }
}

export interface StreamTracking {
  readonly inFlight: number;
}

export interface StreamTrackingOptions {
  settings: Settings;
  logger: Logger;
  board: ActivityBoard;
  metrics: WorkerMetrics;
  onMaxRequests: () => void;
}

export function trackStreams(server: net.Server, options: StreamTrackingOptions): StreamTracking {
  const { settings, logger, board, metrics } = options;
  const policy = createHttp2Policy(settings);
  const trust = createProxyTrust(settings.forwarded_allow_ips);
  const inFlight = new Set<StreamRequest>();
  let oldest: StreamRequest | undefined;
  let served = 0;
  const maxRequests =
    settings.max_requests > 0 ? settings.max_requests + Math.floor(Math.random() * (settings.max_requests_jitter + 1)) : 0;
  const pid = process.pid;

  function markOldest(request: StreamRequest | undefined): void {
    oldest = request;
    if (request) board.setOldest(request.method, request.url, timeOrigin + request.startedAt);
    else board.clearOldest();
  }

  function closed(request: StreamRequest): void {
    const bytes = request.finish();
    const durationMs = performance.now() - request.startedAt;
    inFlight.delete(request);
    streamClosed(request.session);
    if (request === oldest) markOldest(inFlight.values().next().value);
    board.setInFlight(inFlight.size);
    metrics.requestFinished(request.method, request.statusCode, durationMs / 1000);
    if (logger.accessEnabled) {
      const req = request as unknown as IncomingMessage;
      logger.access({
        req,
        res: request as unknown as ServerResponse,
        remoteAddr: trust.clientAddress(req),
        startedAt: Date.now() - durationMs,
        durationUs: Math.round(durationMs * 1000),
        bytes,
        pid,
      });
    }
    if (++served === maxRequests) options.onMaxRequests();
  }

  function admit(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[]): boolean {
    const refused = policy(rawHeaders);
    if (refused !== 0) {
      streamRefused(stream);
      stream.respond({ ':status': refused, 'content-type': 'text/plain; charset=utf-8' });
      stream.end(REFUSAL_TEXT[refused]);
      return false;
    }
    const request = new StreamRequest(stream, headers, logger.accessEnabled);
    // As for a compatibility request (session-of.ts): the client's :scheme is a claim, the transport's is the truth.
    headers[':scheme'] = request.socket.encrypted ? 'https' : 'http';
    inFlight.add(request);
    streamOpened(stream);
    if (oldest === undefined) markOldest(request);
    board.setInFlight(inFlight.size);
    metrics.requestStarted();
    stream.once('close', () => closed(request));
    return true;
  }

  // eslint-disable-next-line @typescript-eslint/unbound-method -- always called with the server as this
  const emit = server.emit as (this: net.Server, event: string | symbol, ...args: unknown[]) => boolean;
  server.emit = function (this: net.Server, event: string | symbol, stream?: unknown, headers?: unknown): boolean {
    // With a 'request' listener, Node's compatibility layer turns the stream into
    // a request, which the request handler serves.
    if (event === 'stream' && this.listenerCount('request') === 0) {
      // eslint-disable-next-line prefer-rest-params -- 'stream' carries (stream, headers, flags, rawHeaders)
      if (!admit(stream as ServerHttp2Stream, headers as IncomingHttpHeaders, arguments[4] as string[])) return true;
    }
    // eslint-disable-next-line prefer-rest-params -- a rest parameter would build an array for every event
    return Reflect.apply(emit, this, arguments) as boolean;
  };

  return {
    get inFlight() {
      return inFlight.size;
    },
  };
}
