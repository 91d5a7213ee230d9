// The TLS options of tsgunicorn's own servers (https, and node:http2's secure
// server for h2): the certificate, and the handshake held to header_timeout.
// Node gives a handshake 120 s, and no HTTP timer watches a connection before its
// handshake ends, so a client that connects and sends nothing, or a ClientHello
// that never ends, would hold the connection that long. With a PROXY header the
// handshake is already held to what is left of header_timeout (proxy-protocol/accept.ts).
import { readFileSync } from 'node:fs';
import type { TlsOptions } from 'node:tls';
import type { Settings } from '../settings/schema.js';

export function tlsServerOptions(settings: Pick<Settings, 'certfile' | 'keyfile' | 'header_timeout'>): TlsOptions {
  return {
    cert: readFileSync(settings.certfile!),
    key: readFileSync(settings.keyfile!),
    handshakeTimeout: settings.header_timeout * 1000,
  };
}
