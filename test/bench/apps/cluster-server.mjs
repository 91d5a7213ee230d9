// Bare node:cluster peer: $BENCH_WORKERS workers on 127.0.0.1:$PORT with the
// scheduling policy from $BENCH_SCHED ("none": workers accept from the shared
// socket themselves; "rr": the primary accepts and hands connections round-robin).
import cluster from 'node:cluster';
import { createServer } from 'node:http';

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
  createServer(app).listen(Number(process.env.PORT), '127.0.0.1');
  process.on('SIGTERM', () => process.exit(0));
}
