// A first app to serve, in TypeScript with no build step: / says hello, and
// /health is there for health_check_path. Serve it with
//   tsgunicorn -w 3 -b 0.0.0.0:8000 packaging/examples/hello/app.ts
import type { IncomingMessage, ServerResponse } from 'node:http';

export function app(req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method === 'GET' && path === '/') {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('Hello, tsgunicorn!');
  } else if (req.method === 'GET' && path === '/health') {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('OK');
  } else {
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not Found');
  }
}
