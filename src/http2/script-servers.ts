// A server script's own node:http2 server (a gRPC server's too) gets what
// tsgunicorn's HTTP/2 servers have. The session timers (session-timers.ts) win
// over the app's own idle timeouts, as tsgunicorn's keepalive wins over an http
// script's keepAliveTimeout. tsgunicorn's http2_* limits fill in each SETTINGS
// value the app did not pass: one it passed wins (grpc-js's
// grpc.max_concurrent_streams), as an http script's own server.setTimeout does;
// limit_request_* still hold per stream (stream-tracking.ts, request-checks.ts).
import type { Http2SecureServer, Http2Server, Settings as Http2Settings } from 'node:http2';
import type { Settings } from '../settings/schema.js';
import { sessionSettings } from './app-servers.js';
import { applySessionTimers } from './session-timers.js';

/** The SETTINGS the app created its server with, as node:http2 keeps them (its `options` symbol, lib/internal/http2/core.js). */
function settingsPassed(server: Http2Server | Http2SecureServer): Http2Settings {
  const options = Object.getOwnPropertySymbols(server).find((key) => key.description === 'options');
  const passed = options ? (server as unknown as Record<symbol, { settings?: Http2Settings }>)[options]?.settings : undefined;
  return Object.fromEntries(Object.entries(passed ?? {}).filter(([, value]) => value !== undefined));
}

export function serveScriptServer(server: Http2Server | Http2SecureServer, settings: Settings): void {
  applySessionTimers(server, settings);
  server.updateSettings({ ...sessionSettings(settings), ...settingsPassed(server) });
}
