// Reads the PROXY protocol header of each connection before the HTTP server (or,
// for HTTPS, the TLS handshake) sees a byte of it, by intercepting the server's
// 'connection' events, as serve.ts's feeders emit them too. The client address
// it carries becomes the socket's remoteAddress/remotePort/remoteFamily, which
// the access log, metrics, journal fields and fetch apps read. Connections from
// peers not in proxy_allow_ips, or with a malformed header, are closed; those
// refusals are logged in aggregate, so a flood costs a line per interval.
import type net from 'node:net';
import tls from 'node:tls';
import type { Logger } from '../logging/logger.js';
import type { Settings } from '../settings/schema.js';
import { createAddressMatcher } from '../settings/address-ranges.js';
import { DeadlineQueue } from './deadlines.js';
import { parseProxyHeader, type ProxiedAddress, type ProxyProtocolMode } from './header.js';

export const REFUSAL_SUMMARY_MS = 10_000;

/** Node's HTTP parser on a socket: `incoming` is the request whose headers are complete, until its response is. */
type ParsedSocket = net.Socket & { parser?: { incoming: unknown } | null };

/**
 * Whether the HTTP server on this socket has not had the headers of a first request yet:
 * none in progress, and no response written (between requests of a kept-alive
 * connection, `incoming` is null again).
 */
function awaitingFirstRequest(socket: ParsedSocket): boolean {
  return socket.parser?.incoming === null && socket.bytesWritten === 0;
}

/** The error Node's server ends a slow request with (lib/_http_server.js onRequestTimeout): its socket handler answers 408. */
const requestTimeout = (): Error => Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' });

/**
 * The client a proxied connection stands for, on the raw socket (HTTP) or its TLS socket.
 * Own properties over net.Socket's getters, which stay what they are: the h2c front
 * reads the TCP peer through them (http2/app-servers.ts).
 */
function stand(socket: net.Socket, source: ProxiedAddress): void {
  Object.defineProperties(socket, {
    remoteAddress: { value: source.address, configurable: true },
    remotePort: { value: source.port, configurable: true },
    remoteFamily: { value: source.family, configurable: true },
  });
}

export function acceptProxyProtocol(
  server: net.Server,
  settings: Pick<Settings, 'proxy_protocol' | 'proxy_allow_ips' | 'header_timeout'>,
  logger: Pick<Logger, 'warning'>,
): void {
  if (settings.proxy_protocol === 'off') return;
  const mode: ProxyProtocolMode = settings.proxy_protocol;
  const allowed = createAddressMatcher(settings.proxy_allow_ips);
  const refusals = refusalLog(logger);
  const secure = server instanceof tls.Server;
  const deadlines = new DeadlineQueue(settings.header_timeout * 1000);
  const sources = new WeakMap<net.Socket, ProxiedAddress>();
  const tlsSockets = new WeakMap<net.Socket, net.Socket>();
  // eslint-disable-next-line @typescript-eslint/unbound-method -- always called with the server as this
  const emit = server.emit as (this: net.Server, event: string | symbol, ...args: unknown[]) => boolean;

  function readHeader(socket: net.Socket): void {
    const peer = socket.remoteAddress ?? '-';
    if (!allowed(peer)) {
      refusals.add(peer, 'not in proxy_allow_ips');
      socket.destroy();
      return;
    }
    let received: Buffer | null = null;
    let headerRead = false;
    const refuse = (reason: string): void => {
      stopReading();
      deadline.cancel();
      refusals.add(peer, reason);
      socket.destroy();
    };
    // One deadline for the connection's header_timeout, counted from the connection
    // as for a client that sends its request at once: first for the PROXY header,
    // which a proxy sends first; then, since Node's own clock starts again at the
    // request's first byte, for the first request, at whose deadline one whose
    // headers are not complete is ended as Node ends it, with the timeout error
    // its socket handler answers 408 to.
    const deadline = deadlines.add(() => {
      if (!headerRead) {
        refuse('no PROXY header in time');
        return;
      }
      if (socket.destroyed) return;
      // The socket the HTTP parser reads: the TLS socket once the handshake is done.
      const http = secure ? tlsSockets.get(socket) : socket;
      if (http === undefined) socket.destroy();
      else if (awaitingFirstRequest(http)) http.emit('error', requestTimeout());
    });
    const onError = (): void => {
      stopReading();
      deadline.cancel();
      socket.destroy();
    };
    const onEnd = (): void => refuse('closed before a complete PROXY header');
    const onData = (chunk: Buffer): void => {
      received = received === null ? chunk : Buffer.concat([received, chunk]);
      const result = parseProxyHeader(received, mode);
      if (result.kind === 'incomplete') return;
      if (result.kind === 'invalid') {
        refuse(result.reason);
        return;
      }
      stopReading();
      headerRead = true;
      if (result.source !== null) {
        stand(socket, result.source);
        if (secure) sources.set(socket, result.source);
      }
      const rest = result.length < received.length ? received.subarray(result.length) : null;
      if (secure) {
        // The TLS socket takes what was read past the header from the raw socket's buffer.
        socket.pause();
        if (rest !== null) socket.unshift(rest);
        emit.call(server, 'connection', socket);
      } else {
        // The HTTP server reads the socket natively from here on; the bytes read
        // past the header reach its parser at once through its 'data' listener,
        // as the socket still flows.
        emit.call(server, 'connection', socket);
        if (rest !== null) socket.unshift(rest);
        // The first request's headers came with the PROXY header, in the same
        // read: its deadline can no longer pass, and goes at once.
        const parser = (socket as ParsedSocket).parser;
        if (parser == null || parser.incoming !== null) {
          deadline.cancel();
          return;
        }
      }
      socket.on('close', () => deadline.cancel());
    };
    const stopReading = (): void => {
      socket.off('data', onData).off('error', onError).off('end', onEnd);
    };
    socket.on('data', onData).on('error', onError).on('end', onEnd);
  }

  server.emit = function (this: net.Server, event: string | symbol, socket?: unknown, b?: unknown): boolean {
    if (event === 'connection') {
      readHeader(socket as net.Socket);
      return true;
    }
    if (event === 'secureConnection') {
      // Node's TLS socket keeps the socket it wraps as _parent.
      const raw = (socket as { _parent?: net.Socket })._parent!;
      const source = sources.get(raw);
      if (source !== undefined) stand(socket as net.Socket, source);
      tlsSockets.set(raw, socket as net.Socket);
    }
    // 'request' (two arguments) comes with every request: passed on without
    // materializing `arguments`; other events keep their exact arguments.
    if (arguments.length === 3) return emit.call(this, event, socket, b);
    // eslint-disable-next-line prefer-rest-params -- a rest parameter would build an array for every event
    return Reflect.apply(emit, this, arguments) as boolean;
  };
}

/** Logs the first refusal at once, then how many more each interval (if any). */
function refusalLog(logger: Pick<Logger, 'warning'>): { add(peer: string, reason: string): void } {
  let timer: NodeJS.Timeout | null = null;
  let count = 0;
  let last = '';
  const summarise = (): void => {
    if (count === 0) {
      timer = null;
      return;
    }
    logger.warning(`Refused ${count} more connection(s) in the last ${REFUSAL_SUMMARY_MS / 1000} s (PROXY protocol); the last: ${last}`);
    count = 0;
    timer = setTimeout(summarise, REFUSAL_SUMMARY_MS).unref();
  };
  return {
    add(peer, reason) {
      const what = `from ${peer}: ${reason}`;
      if (timer === null) {
        logger.warning(
          `Refused a connection (PROXY protocol) ${what}; further refusals are summed up every ${REFUSAL_SUMMARY_MS / 1000} s`,
        );
        timer = setTimeout(summarise, REFUSAL_SUMMARY_MS).unref();
        return;
      }
      count++;
      last = what;
    },
  };
}
