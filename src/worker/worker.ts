// A worker process: loads the app, accepts connections on the listening sockets it
// inherited from the master, and serves until told to retire or stop. Spawned by
// the master with the heartbeat pipe at HEARTBEAT_FD and the sockets after it.
import type { Server, ServerOptions } from 'node:http';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { Worker as Thread } from 'node:worker_threads';
import { AppLoadError, loadApp, type UpgradeHandler } from '../app/load.js';
import { loadHooks } from '../hooks.js';
import { EXIT, FINAL_METRICS, FIRST_LISTEN_FD, HEARTBEAT_FD, type MasterMessage, type WorkerMessage } from '../ipc.js';
import { createLogger, type Logger } from '../logging/logger.js';
import { createWorkerMetrics, type WorkerMetrics } from '../metrics/worker-metrics.js';
import { heartbeatIntervalMs } from '../heartbeat.js';
import type { Settings } from '../settings/schema.js';
import { openJournal, stderrIsJournal } from '../systemd/journal.js';
import { ActivityBoard } from './activity-board.js';
import { createRequestHandler, type RequestHandler } from './request-handler.js';

// Not an ES import, for the reason given in metrics/server.ts: it would load the
// bundled undici, tens of milliseconds of every worker's boot.
const http = process.getBuiltinModule('node:http');

const send = (message: WorkerMessage): void => {
  if (process.connected) process.send!(message);
};

process.once('message', (message: MasterMessage) => {
  if (message.type === 'boot') void boot(message.settings, message.sockets, message.secure, message.workerId);
});
// A terminal's HUP reaches the whole process group; reloading is the master's job.
process.on('SIGHUP', () => {});

async function boot(settings: Settings, socketCount: number, secure: boolean, workerId: number): Promise<void> {
  const name = settings.proc_name ?? 'tsgunicorn';
  process.title = `tsgunicorn: worker [${name}]`;
  const journal = stderrIsJournal() ? openJournal(name) : null;
  const logger = createLogger(settings, { pid: process.pid, journal, identifier: name });
  process.on('unhandledRejection', (err) => logger.error('Unhandled promise rejection in the app', err));

  let app;
  try {
    app = await loadApp(settings.app!, process.cwd(), settings.interface);
  } catch (err) {
    // Reported once by the master, which decides between exit 4 and a failed reload.
    // An AppLoadError is the operator's to fix and says all in its message; anything else shows its stack.
    const message = err instanceof AppLoadError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
    send({ type: 'app-error', message });
    await logger.close();
    process.exit(EXIT.APP_LOAD_ERROR);
  }
  const hooks = await loadHooks(settings.hooks, process.cwd(), logger);

  const board = new ActivityBoard();
  const beatMs = heartbeatIntervalMs(settings.timeout);
  setInterval(() => board.tick(), beatMs).unref();
  const metrics = createWorkerMetrics();
  const handler = createRequestHandler({
    app: app.listener,
    fetchInterface: app.interface === 'fetch',
    settings,
    logger,
    board,
    metrics,
    onMaxRequests: () => send({ type: 'recycle', reason: 'max_requests' }),
  });
  const servers = await listen(settings, socketCount, secure, handler, app.upgrade);
  await hooks.run('post_worker_init', { pid: process.pid, id: workerId });
  send({ type: 'ready' });
  // Started after 'ready': booting a thread costs as much as the rest of the boot.
  const watchdog = new Thread(new URL('./watchdog-thread.js', import.meta.url), {
    workerData: { buffer: board.buffer, fd: HEARTBEAT_FD, intervalMs: beatMs, orphanGraceMs: settings.graceful_timeout * 1000 + 1000 },
  });
  watchdog.unref();

  let stopping = false;
  const drain = (mode: 'retire' | 'stop'): void => {
    if (stopping) return;
    stopping = true;
    void drainAndExit(mode, servers, handler, settings, logger, metrics);
  };
  process.on('SIGTERM', () => drain('stop'));
  // Workers never outlive the master: its IPC channel closes when it dies.
  process.on('disconnect', () => drain('stop'));
  for (const signal of ['SIGINT', 'SIGQUIT'] as const) process.on(signal, () => process.exit(EXIT.OK));
  process.on('uncaughtException', (err) => {
    logger.critical('Uncaught exception in the app; this worker stops and is replaced', err);
    drain('stop');
  });
  process.on('message', (message: MasterMessage) => {
    switch (message.type) {
      case 'retire':
        drain('retire');
        break;
      case 'reopen-logs':
        logger.reopen();
        break;
      case 'metrics':
        void metrics.snapshot().then((data) => send({ type: 'metrics', id: message.id, data }));
        break;
    }
  });
}

async function listen(
  settings: Settings,
  socketCount: number,
  secure: boolean,
  handler: RequestHandler,
  upgrade: UpgradeHandler | null,
): Promise<Server[]> {
  const options: ServerOptions = {
    keepAliveTimeout: settings.keepalive * 1000,
    headersTimeout: settings.header_timeout * 1000,
    requestTimeout: settings.request_timeout * 1000,
    // Node's parser caps the request line and headers together; our own checks
    // then apply Gunicorn's per-line and per-field limits with 414/431.
    maxHeaderSize: Math.max(16384, settings.limit_request_line + settings.limit_request_field_size + 4096),
    noDelay: true,
    // Node enforces both timeouts from a sweep that runs every 30 s by default, so
    // a 3 s header_timeout would let a slowloris hold its socket for up to 33 s.
    // A quarter of the shortest timeout (at most 1 s) keeps the overshoot small.
    connectionsCheckingInterval: Math.min(1000, ...[settings.header_timeout, settings.request_timeout].filter((t) => t > 0).map((t) => t * 250)),
  };
  const tls = secure ? { cert: readFileSync(settings.certfile!), key: readFileSync(settings.keyfile!) } : null;
  const https = tls ? process.getBuiltinModule('node:https') : null;
  const servers: Server[] = [];
  for (let i = 0; i < socketCount; i++) {
    const server = https ? https.createServer({ ...options, ...tls }, handler.listener) : http.createServer(options, handler.listener);
    if (settings.max_connections > 0) server.maxConnections = settings.max_connections;
    // Keep one more than allowed, so that "too many" is visible to the check.
    server.maxHeadersCount = settings.limit_request_fields + 1;
    if (upgrade) server.on('upgrade', upgrade);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // With an fd, node takes the backlog only as the second argument.
      server.listen({ fd: FIRST_LISTEN_FD + i }, settings.backlog, () => {
        server.off('error', reject);
        resolve();
      });
    });
    servers.push(server);
  }
  return servers;
}

async function drainAndExit(
  mode: 'retire' | 'stop',
  servers: Server[],
  handler: RequestHandler,
  settings: Settings,
  logger: Logger,
  metrics: WorkerMetrics,
): Promise<void> {
  handler.startDraining();
  for (const server of servers) {
    // net's close only stops accepting. http's would also drop idle keep-alive
    // connections, which a client may be reusing right now: when retiring, those
    // get `Connection: close` on their next response or expire by keepalive.
    net.Server.prototype.close.call(server);
  }
  const deadline = Date.now() + settings.graceful_timeout * 1000;
  const openConnections = () =>
    Promise.all(servers.map((s) => new Promise<number>((resolve) => s.getConnections((_, n) => resolve(n ?? 0)))));
  for (;;) {
    if (mode === 'stop') for (const server of servers) server.closeIdleConnections();
    const open = (await openConnections()).reduce((a, b) => a + b, 0);
    if (handler.inFlight === 0 && open === 0) break;
    if (Date.now() >= deadline) {
      logger.warning(`Graceful timeout: ${handler.inFlight} request(s) still in flight on ${open} connection(s) are cut`);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  // The last counts since the master's previous scrape, so totals stay exact.
  if (process.connected) {
    const data = await metrics.snapshot();
    await new Promise((resolve) => process.send!({ type: 'metrics', id: FINAL_METRICS, data } satisfies WorkerMessage, resolve));
  }
  await logger.close();
  process.exit(EXIT.OK);
}
