// Bare node:cluster peer: $BENCH_WORKERS workers on 127.0.0.1:$PORT with the
// scheduling policy from $BENCH_SCHED ("none": workers accept from the shared
// socket themselves; "rr": the primary accepts and hands connections round-robin).
// $BENCH_HTTP2: "h2c" serves node:http2's createServer (cleartext, prior knowledge), "h2" its createSecureServer
// with $BENCH_CERT and $BENCH_KEY (HTTP/1.1 too, as tsgunicorn's http_protocols = h2,h1).
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import http2 from 'node:http2';

if (cluster.isPrimary) {
  cluster.schedulingPolicy = process.env.BENCH_SCHED === 'none' ? cluster.SCHED_NONE : cluster.SCHED_RR;
  const workers = Number(process.env.BENCH_WORKERS ?? 2);
  for (let i = 0; i < workers; i += 1) cluster.fork();
  const stop = () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const { app } = await import('./hello-listener.mjs');
  const { BENCH_HTTP2: protocol, BENCH_CERT: cert, BENCH_KEY: key } = process.env;
  const server =
    protocol === 'h2c'
      ? http2.createServer(app)
      : protocol === 'h2'
        ? http2.createSecureServer({ cert: readFileSync(cert), key: readFileSync(key), allowHTTP1: true }, app)
        : createServer(app);
  server.listen(Number(process.env.PORT), '127.0.0.1');
  process.on('SIGTERM', () => process.exit(0));
}
