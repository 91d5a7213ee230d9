// The master's Prometheus endpoint: GET /metrics on metrics_bind, nothing else.
import type { Server } from 'node:http';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import type { TcpAddress } from '../settings/kinds.js';

// Not `import ... from 'node:http'`: an ES import of a builtin reads all its
// exports, and node:http's lazy WebSocket/CloseEvent/MessageEvent getters then
// load the bundled undici, about 9 MB of the master's resident memory.
const { createServer } = process.getBuiltinModule('node:http');

// The text format, version 0.0.4, that exposition.ts renders (Prometheus
// "Exposition formats"); spelled out here so that serving does not load prom-client.
const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

// A scraper sends one small GET and reads the answer: Node's defaults (no
// connection cap, a minute to send headers) would let anyone who reaches the
// port hold the master's memory with slow connections.
const MAX_SCRAPERS = 32;
const SILENT_MS = 5_000;
const SCRAPER_LIMITS = {
  headersTimeout: 5_000,
  requestTimeout: 10_000,
  keepAliveTimeout: 5_000,
  connectionsCheckingInterval: 1_000,
  maxHeaderSize: 8192,
};

export async function startMetricsServer(
  bind: TcpAddress,
  handler: () => Promise<string>,
  log: { error(msg: string, err?: unknown): void },
): Promise<Server> {
  // One rendering serves every scrape that arrives while it runs: each asks every
  // worker for its numbers, and back-to-back scrapes would otherwise pile them up.
  let rendering: Promise<string> | null = null;
  const render = () =>
    (rendering ??= handler().finally(() => {
      rendering = null;
    }));
  const server = createServer(SCRAPER_LIMITS, (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('Method Not Allowed\n');
      return;
    }
    render().then(
      (body) => {
        res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE }).end(req.method === 'GET' ? body : undefined);
      },
      (err: unknown) => {
        log.error('metrics: rendering failed', err);
        res.writeHead(500, { 'content-type': 'text/plain' }).end('Internal Server Error\n');
      },
    );
  });
  server.maxConnections = MAX_SCRAPERS;
  // Node's header timeout starts at a request's first byte, and its socket
  // timeout did not fire with these limits set (Node 24): a connection that
  // sends nothing is ended here.
  server.on('connection', (socket: Socket) => {
    const timer = setTimeout(() => socket.destroy(), SILENT_MS);
    socket.once('data', () => clearTimeout(timer)).once('close', () => clearTimeout(timer));
  });
  server.listen(bind.port, bind.host);
  await once(server, 'listening');
  return server;
}
