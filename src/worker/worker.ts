// A worker process: loads the app, accepts connections on the listening sockets it
// inherited from the master, and serves until told to retire or stop. Spawned by
// the master with the heartbeat pipe at HEARTBEAT_FD and the sockets after it.
import type { RequestListener, Server } from 'node:http';
import type { Http2Server } from 'node:http2';
import { createRequire } from 'node:module';
import net from 'node:net';
import { loadApp, type LoadedApp } from '../app/load.js';
import { preloadSearchDirs, runPreloads } from '../app/preload.js';
import { describeLoadFailure } from '../app/spec.js';
import { hasCaptured, type ParkReason } from '../app/server-script.js';
import { loadHooks } from '../hooks.js';
import { EXIT, FINAL_METRICS, FIRST_LISTEN_FD, HEARTBEAT_FD, type MasterMessage, type WorkerMessage } from '../ipc.js';
import { createLogger, type Logger } from '../logging/logger.js';
import { createWorkerMetrics, type WorkerMetrics } from '../metrics/worker-metrics.js';
import { heartbeatIntervalMs } from '../heartbeat.js';
import { timerDelay } from '../settings/kinds.js';
import { journalIdentifier, titleName, type Settings } from '../settings/schema.js';
import { journalForStderr } from '../systemd/journal.js';
import { acceptProxyProtocol } from '../proxy-protocol/accept.js';
import { ActivityBoard } from './activity-board.js';
import { startWatchdog } from './watchdog/start.js';
import { checkMaster, serving } from './master-death.js';
import { createRequestHandler, type RequestHandler } from './request-handler.js';
import { applyServerSettings, interceptRequests, listenOnServer, serveOnSockets, type Serving } from './serve.js';
import { createSecureAppServer, serveCleartextHttp2 } from '../http2/app-servers.js';
import { tlsServerOptions } from './tls-options.js';
import { goAwayAll, isHttp2Server, trackSessions } from '../http2/servers.js';
import { trackStreams, type StreamTracking } from '../http2/stream-tracking.js';
import { serveScriptServer } from '../http2/script-servers.js';

// node:http and node:https are required where tsgunicorn creates its server, as an
// app's server code requires them under node: an APM agent that hooks require
// (OpenTelemetry, dd-trace, New Relic) patches them then, even when the app
// itself never requires them (a fetch app). Not an ES import, for the reason
// given in metrics/server.ts: it would load the bundled undici, tens of
// milliseconds of every worker's boot.
const require = createRequire(import.meta.url);

const send = (message: WorkerMessage): void => {
  if (process.connected) process.send!(message);
};

/** Set once the boot failed: the worker exits, and must not say it is ready meanwhile. */
let bootFailed = false;

process.once('message', (message: MasterMessage) => {
  if (message.type !== 'boot') return;
  checkMaster(message.masterPid);
  void boot(message.settings, message.sockets, message.secure, message.workerId);
});
// A terminal's HUP reaches the whole process group; reloading is the master's job.
process.on('SIGHUP', () => {});

async function boot(settings: Settings, socketCount: number, secure: boolean, workerId: number): Promise<void> {
  const title = `tsgunicorn: worker [${titleName(settings)}]`;
  process.title = title;
  const logger = createLogger(settings, { journal: journalForStderr(journalIdentifier(settings)) });
  const stopFailingBoot = failBootOnAppErrors(logger);
  const app = await loadAppOrExit(settings, secure, logger);
  const hooks = await loadHooks(settings.hooks, process.cwd(), logger);

  const board = new ActivityBoard();
  const beatMs = heartbeatIntervalMs(settings.timeout);
  setInterval(() => board.tick(), beatMs).unref();
  const metrics = createWorkerMetrics();
  const onMaxRequests = () => send({ type: 'recycle', reason: 'max_requests' });
  const { server, handler, sessions } = createServer(app, settings, secure, (listener) =>
    createRequestHandler({ app: listener, fetchInterface: app.interface === 'fetch', settings, logger, board, metrics, onMaxRequests }),
  );
  // A node:http2 server script: streams it takes itself (gRPC) get the same
  // services, its sessions the timers and limits of tsgunicorn's HTTP/2 servers.
  const http2Script = app.interface === 'server' && sessions !== null;
  const streams = http2Script ? trackStreams(server, { settings, logger, board, metrics, onMaxRequests }) : null;
  if (http2Script) serveScriptServer(sessions as Http2Server, settings);
  // Also an HTTP/2 server's: node:http serves its HTTP/1.1 connections (allowHTTP1) with them.
  applyServerSettings(server, settings, app.interface === 'server');
  acceptProxyProtocol(server, settings, logger);
  const listening = await serveOnSockets(
    server,
    FIRST_LISTEN_FD,
    socketCount,
    settings,
    pauseReporter(settings.max_connections, logger, metrics),
  );
  // A framework's server may name the process after itself (Next.js does).
  process.title = title;
  await hooks.run('post_worker_init', { pid: process.pid, id: workerId });
  // The app failed meanwhile (an error in its listen() callback): the worker is exiting with it.
  if (bootFailed) return;
  send({
    type: 'ready',
    app:
      app.interface === 'server'
        ? { interface: 'server', asked: app.server.asked, secure: app.server.secure }
        : { interface: app.interface },
  });
  // Started after 'ready': booting the fallback's thread costs as much as the rest of the boot.
  startWatchdog(
    board,
    { fd: HEARTBEAT_FD, intervalMs: beatMs, orphanGraceMs: timerDelay(settings.graceful_timeout * 1000 + 1000) },
    logger,
  );
  stopFailingBoot();
  process.on('unhandledRejection', (err) => logger.error('Unhandled promise rejection in the app', err));
  obeyMaster(
    (mode) => drainAndExit(mode, listening, { handler, streams, sessions }, settings, logger, metrics),
    app.interface === 'server' ? server : null,
    handler,
    logger,
    metrics,
  );
  serving();
}

/** The app, or the worker exits with the reason sent to the master (which reports it once, as exit 4 or a failed reload). */
async function loadAppOrExit(settings: Settings, secure: boolean, logger: Logger): Promise<LoadedApp> {
  let refusal: { message: string; exitCode: number };
  try {
    await runPreloads(settings.preload, preloadSearchDirs(settings.app, process.cwd()));
    const app = await loadApp(
      settings,
      process.cwd(),
      {
        onFetchError: (err) => logger.error('Error in the fetch handler', err),
        onParked: (asked, reason) => logParked(logger, asked, reason),
      },
      { fd: FIRST_LISTEN_FD, backlog: settings.backlog },
    );
    if (app.interface !== 'server' || !secure) return app;
    // tsgunicorn's TLS wraps only servers of its own; the app's server is the app's.
    const ownTls = app.server.secure
      ? 'creates an https server with its own TLS, and certfile/keyfile are set too: remove certfile and keyfile'
      : 'creates its own http server, and certfile/keyfile apply only to exported apps: remove them and terminate TLS in front (a proxy), or create the server with https.createServer';
    refusal = { message: `${app.file} ${ownTls}`, exitCode: EXIT.APP_LOAD_ERROR };
  } catch (err) {
    refusal = describeLoadFailure(err);
  }
  return failBoot(refusal, logger);
}

/**
 * Until the worker serves, an error the app throws or a rejection it leaves
 * unhandled ends the boot at once with that error (exit 4), as plain node exits
 * on it, rather than a wait for listen() that never comes; unless the app
 * handles such errors itself, as node then lets it.
 */
function failBootOnAppErrors(logger: Logger): () => void {
  const events = ['uncaughtException', 'unhandledRejection'] as const;
  const handlers = events.map((event) => {
    const handler = (err: unknown) => {
      if (process.listenerCount(event) === 1) void failBoot(describeLoadFailure(err), logger);
    };
    process.on(event, handler);
    return handler;
  });
  return () => events.forEach((event, i) => process.off(event, handlers[i]!));
}

/** Sends the reason to the master (which reports it once, as exit 4 or a failed reload) and exits. */
async function failBoot(refusal: { message: string; exitCode: number }, logger: Logger): Promise<never> {
  bootFailed = true;
  send({ type: 'app-error', message: refusal.message });
  await logger.close();
  process.exit(refusal.exitCode);
}

/**
 * The HTTP server that serves the app: the server script's own, or one of ours
 * around the exported app; and the node:http2 server whose sessions get GOAWAY
 * when the worker drains, if any.
 */
function createServer(
  app: LoadedApp,
  settings: Settings,
  secure: boolean,
  handlerFor: (listener: RequestListener) => RequestHandler,
): { server: Server; handler: RequestHandler; sessions: net.Server | null } {
  if (app.interface === 'server') {
    const server = app.server.server;
    return { server, handler: interceptRequests(server, handlerFor), sessions: isHttp2Server(server) ? trackSessions(server) : null };
  }
  const handler = handlerFor(app.listener);
  if (secure && settings.http_protocols.includes('h2')) {
    const server = createSecureAppServer(settings, handler.listener);
    if (app.upgrade) server.on('upgrade', app.upgrade);
    return { server: server as unknown as Server, handler, sessions: trackSessions(server) };
  }
  const server = secure
    ? (require('node:https') as typeof import('node:https')).createServer(tlsServerOptions(settings), handler.listener)
    : (require('node:http') as typeof import('node:http')).createServer(handler.listener);
  if (!secure && settings.http2_cleartext !== 'off') {
    return { server, handler, sessions: trackSessions(serveCleartextHttp2(server, settings, handler.listener, app.upgrade)) };
  }
  if (app.upgrade) server.on('upgrade', app.upgrade);
  return { server, handler, sessions: null };
}

/** What the master and signals ask of a serving worker. */
function obeyMaster(
  drainAndExit: (mode: 'retire' | 'stop') => Promise<void>,
  appServer: Server | null,
  handler: RequestHandler,
  logger: Logger,
  metrics: WorkerMetrics,
): void {
  let stopping = false;
  const drain = (mode: 'retire' | 'stop'): void => {
    if (stopping) return;
    stopping = true;
    void drainAndExit(mode);
  };
  process.on('SIGTERM', () => drain('stop'));
  // Workers never outlive the master: its IPC channel closes when it dies.
  process.on('disconnect', () => drain('stop'));
  for (const signal of ['SIGINT', 'SIGQUIT'] as const) process.on(signal, () => process.exit(EXIT.OK));
  process.on('uncaughtException', (err) => {
    logger.critical('Uncaught exception in the app; this worker stops and is replaced', err);
    drain('stop');
  });
  // The app closed the server it is served through: nothing reaches it any more,
  // unless it listens again (in its close callback, say), which serves on.
  if (appServer)
    listenOnServer(appServer, 'close', () =>
      setImmediate(() => {
        if (stopping || appServer.listening) return;
        logger.error('The app closed its server (server.close()) and did not listen again; this worker stops and is replaced');
        drain('stop');
      }),
    );
  process.on('message', (message: MasterMessage) => {
    switch (message.type) {
      case 'retire':
        drain('retire');
        break;
      case 'stop':
        drain('stop');
        break;
      case 'drain':
        handler.failHealthChecks();
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

/**
 * Counts each pause at max_connections in the metrics, and logs them in
 * aggregate: the first at once, then at most one line a minute while they go on.
 */
function pauseReporter(max: number, logger: Logger, metrics: WorkerMetrics): () => void {
  let unreported = 0;
  let timer: NodeJS.Timeout | null = null;
  const say = (count: number) =>
    logger.warning(
      `Reached max_connections (${max}) ${count === 1 ? 'once' : `${count} times`}${timer ? ' in the last minute' : ''}: ` +
        'stopped accepting until a connection closes; new connections go to other workers or wait in the backlog',
    );
  return () => {
    metrics.acceptPaused();
    if (timer) {
      unreported++;
      return;
    }
    say(1);
    timer = setInterval(() => {
      if (unreported === 0) {
        clearInterval(timer!);
        timer = null;
        return;
      }
      say(unreported);
      unreported = 0;
    }, 60_000).unref();
  };
}

function logParked(logger: Logger, asked: string, reason: ParkReason): void {
  const served = hasCaptured()?.asked;
  if (reason === 'alias') {
    logger.debug(`The app's server for ${asked} is served on tsgunicorn's sockets with its main server`);
    return;
  }
  if (reason === 'late-main') {
    logger.warning(
      `The app's server asking for ${asked} ($PORT or tsgunicorn's port) started after its server for ${served}, ` +
        `which tsgunicorn already serves: ${asked} is NOT served. Start the main server first, or serve the other one's routes from it`,
    );
    return;
  }
  const why =
    reason === 'second-server'
      ? `tsgunicorn serves one server of the app on its sockets (${served}: the one asking for $PORT or tsgunicorn's port, else the first)`
      : 'the app is served from its export';
  logger.warning(
    `The app started another HTTP server, asking for ${asked}; it is not bound, since ${why}. ` +
      'Serve those routes from the main server, or run them as a service of their own',
  );
}

async function drainAndExit(
  mode: 'retire' | 'stop',
  { http: httpServer, servers }: Serving,
  { handler, streams, sessions }: { handler: RequestHandler; streams: StreamTracking | null; sessions: net.Server | null },
  settings: Settings,
  logger: Logger,
  metrics: WorkerMetrics,
): Promise<void> {
  handler.startDraining();
  // net's close only stops accepting. http's would also drop idle keep-alive
  // connections, which a client may be reusing right now: when retiring, those
  // get `Connection: close` on their next response or expire by keepalive.
  for (const server of servers) net.Server.prototype.close.call(server);
  // Then HTTP/2 sessions get GOAWAY: their open streams finish, new ones go elsewhere.
  if (sessions !== null) goAwayAll(sessions);
  const inFlight = () => handler.inFlight + (streams?.inFlight ?? 0);
  const deadline = Date.now() + settings.graceful_timeout * 1000;
  const openConnections = () =>
    Promise.all(servers.map((s) => new Promise<number>((resolve) => s.getConnections((_, n) => resolve(n ?? 0)))));
  for (;;) {
    if (mode === 'stop') httpServer.closeIdleConnections?.();
    const open = (await openConnections()).reduce((a, b) => a + b, 0);
    if (inFlight() === 0 && open === 0) break;
    if (Date.now() >= deadline) {
      logger.warning(`Graceful timeout: ${inFlight()} request(s) still in flight on ${open} connection(s) are cut`);
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
