// The master's Prometheus endpoint: GET /metrics on metrics_bind, nothing else.
import type { Server } from 'node:http';
import { once } from 'node:events';
import type { TcpAddress } from '../settings/kinds.js';

// Not `import ... from 'node:http'`: an ES import of a builtin reads all its
// exports, and node:http's lazy WebSocket/CloseEvent/MessageEvent getters then
// load the bundled undici, about 9 MB of the master's resident memory.
const { createServer } = process.getBuiltinModule('node:http');

// The text format, version 0.0.4, that exposition.ts renders (Prometheus
// "Exposition formats"); spelled out here so that serving does not load prom-client.
const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export async function startMetricsServer(
  bind: TcpAddress,
  handler: () => Promise<string>,
  log: { error(msg: string, err?: unknown): void },
): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('Method Not Allowed\n');
      return;
    }
    handler().then(
      (body) => {
        res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE }).end(req.method === 'GET' ? body : undefined);
      },
      (err: unknown) => {
        log.error('metrics: rendering failed', err);
        res.writeHead(500, { 'content-type': 'text/plain' }).end('Internal Server Error\n');
      },
    );
  });
  server.listen(bind.port, bind.host);
  await once(server, 'listening');
  return server;
}
