// One node:http server on 127.0.0.1:$PORT (node:https with $BENCH_CERT and $BENCH_KEY; node:http2 with $BENCH_HTTP2:
// "h2c" its createServer, "h2" its createSecureServer with the certificate). Run alone it is the single-process
// peer; PM2 cluster mode runs it once per instance and shares the port.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { app } from './hello-listener.mjs';

const { BENCH_CERT: cert, BENCH_KEY: key, BENCH_HTTP2: http2 } = process.env;
const tls = () => ({ cert: readFileSync(cert), key: readFileSync(key) });
const server = (
  http2 === 'h2c'
    ? (await import('node:http2')).createServer(app)
    : http2 === 'h2'
      ? (await import('node:http2')).createSecureServer({ ...tls(), allowHTTP1: true }, app)
      : cert && key
        ? (await import('node:https')).createServer(tls(), app)
        : createServer(app)
).listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  // node:http2's servers have no such method: their sessions end as their clients go.
  server.closeAllConnections?.();
});
process.on('SIGINT', () => process.exit(0));
