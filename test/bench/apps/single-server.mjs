// One node:http server on 127.0.0.1:$PORT (node:https with $BENCH_CERT and $BENCH_KEY). Run alone it is the
// single-process peer; PM2 cluster mode runs it once per instance and shares the port.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { app } from './hello-listener.mjs';

const { BENCH_CERT: cert, BENCH_KEY: key } = process.env;
const server = (
  cert && key ? (await import('node:https')).createServer({ cert: readFileSync(cert), key: readFileSync(key) }, app) : createServer(app)
).listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)).closeAllConnections());
process.on('SIGINT', () => process.exit(0));
