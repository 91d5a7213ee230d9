// The requests in flight as the request handler keeps them: counted, the oldest on the activity board (what the
// watchdog reports and the master's hung-request message names) as requests finish out of order, and a drain
// that closes the connections of responses not yet begun.
import http, { type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import http2, { type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { createLogger } from '../../src/logging/logger.js';
import { createWorkerMetrics, type WorkerMetrics } from '../../src/metrics/worker-metrics.js';
import { schema, settingNames, type Settings } from '../../src/settings/schema.js';
import { ActivityBoard } from '../../src/worker/activity-board.js';
import { applySessionTimers } from '../../src/http2/session-timers.js';
import { createRequestHandler, type RequestHandler } from '../../src/worker/request-handler.js';

const dir = mkdtempSync(join(tmpdir(), 'tsgunicorn-request-handler-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const defaults = Object.fromEntries(settingNames.map((name) => [name, schema[name].default])) as Settings;

const settings = { ...defaults, errorlog: join(dir, 'error.log') };

/** The request handler around app, with default settings. */
function handlerFor(app: RequestListener, board: ActivityBoard, metrics: WorkerMetrics = createWorkerMetrics()): RequestHandler {
  return createRequestHandler({
    app,
    fetchInterface: false,
    settings,
    logger: createLogger(settings, { journal: null }),
    board,
    metrics,
    onMaxRequests: () => {},
  });
}

/** The request handler around app on a node:http server on a loopback port. */
async function serve(app: RequestListener, board: ActivityBoard, metrics?: WorkerMetrics) {
  const handler = handlerFor(app, board, metrics);
  const server = http.createServer(handler.listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { handler, server, port: (server.address() as AddressInfo).port };
}

interface Held {
  res: ServerResponse;
  closed: Promise<void>;
}

it('keeps the oldest request in flight on the board as requests finish out of order, and drains the rest', async () => {
  const board = new ActivityBoard();
  const held = new Map<string, Held>();
  let arrived: () => void = () => {};
  // The app holds every response until the test ends it; its own 'close' listener runs after the handler's.
  const { handler, server, port } = await serve((req, res) => {
    held.set(req.url!, { res, closed: new Promise((resolve) => res.once('close', () => resolve())) });
    arrived();
  }, board);
  const responses = new Map<string, Promise<IncomingMessage>>();
  const send = async (path: string): Promise<void> => {
    const here = new Promise<void>((resolve) => (arrived = resolve));
    // A keep-alive client on a connection of its own: the response says whether the connection stays open.
    const agent = new http.Agent({ keepAlive: true });
    responses.set(path, new Promise((resolve) => http.get({ port, host: '127.0.0.1', path, agent }, resolve)));
    await here;
  };
  const finish = async (path: string): Promise<void> => {
    const { res, closed } = held.get(path)!;
    res.end('done');
    await closed;
  };
  const oldest = () => board.read().oldest?.label ?? null;
  try {
    // One at a time, so their order is known.
    for (const path of ['/a', '/b', '/c', '/d']) await send(path);
    expect([handler.inFlight, board.read().inFlight, oldest()]).toEqual([4, 4, 'GET /a']);
    await finish('/c'); // not the oldest: the board keeps /a
    expect([handler.inFlight, oldest()]).toEqual([3, 'GET /a']);
    await finish('/a');
    expect([handler.inFlight, oldest()]).toEqual([2, 'GET /b']);
    held.get('/d')!.res.flushHeaders();
    handler.startDraining();
    await finish('/b');
    await finish('/d');
    expect([handler.inFlight, board.read().inFlight, oldest()]).toEqual([0, 0, null]);
    // /b had not begun its response when the drain started: it says its connection closes; /d had.
    expect((await responses.get('/b')!).headers.connection).toBe('close');
    expect((await responses.get('/d')!).headers.connection).toBe('keep-alive');
    await send('/e');
    expect([handler.inFlight, oldest()]).toEqual([1, 'GET /e']);
    await finish('/e');
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

it('counts each request once, finished in the app call or later, whole body written or still queued', async () => {
  const metrics = createWorkerMetrics();
  const board = new ActivityBoard();
  // More than a loopback socket takes at once: the response is ended in the app call but still queued.
  const big = Buffer.alloc(32 * 1024 * 1024, 'x');
  const { handler, server, port } = await serve(
    (req, res) => {
      if (req.url === '/now') res.end('now');
      else if (req.url === '/big') res.end(big);
      else setImmediate(() => res.writeHead(404).end('later'));
    },
    board,
    metrics,
  );
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = (path: string) =>
    new Promise<number>((resolve, reject) =>
      http
        .get({ port, host: '127.0.0.1', path, agent }, (res) => {
          let bytes = 0;
          res.on('data', (chunk: Buffer) => (bytes += chunk.length));
          res.on('end', () => resolve(bytes));
        })
        .on('error', reject),
    );
  const settled = async () => {
    while (handler.inFlight > 0) await new Promise((resolve) => setImmediate(resolve));
  };
  const seen = async () => {
    const snapshot = await metrics.snapshot();
    const family = (name: string) => snapshot.metrics.find((m) => m.name === name)!.values;
    return {
      counts: Object.fromEntries(family('http_requests_total').map((v) => [v.labels.status, v.value])),
      durations: family('http_request_duration_seconds').find((v) => v.metricName === 'http_request_duration_seconds_count')!.value,
    };
  };
  try {
    expect(await get('/now')).toBe(3);
    expect(await get('/later')).toBe(5);
    expect(await get('/big')).toBe(big.length);
    // The last response's bookkeeping may run just after its client has the body.
    await settled();
    expect([handler.inFlight, board.read().inFlight, board.read().oldest]).toEqual([0, 0, null]);
    expect(await seen()).toEqual({ counts: { '200': 2, '404': 1 }, durations: 3 });
    await Promise.all(['/now', '/later', '/now', '/big', '/now'].map(get));
    await settled();
    expect([handler.inFlight, board.read().inFlight]).toEqual([0, 0]);
    expect(await seen()).toEqual({ counts: { '200': 6, '404': 2 }, durations: 8 });
  } finally {
    agent.destroy();
    server.closeAllConnections();
    server.close();
  }
});

it('keeps the board and the order right for a request an app hands to the listener from within its own call', async () => {
  const board = new ActivityBoard();
  const oldest = () => board.read().oldest?.label ?? null;
  // The handed-over request: Node's own request and response classes, on a socket that never connects.
  const inner = new http.IncomingMessage(new net.Socket());
  Object.assign(inner, { method: 'GET', url: '/inner', httpVersionMajor: 1, httpVersionMinor: 1, rawHeaders: ['Host', 'x'] });
  const innerRes = new http.ServerResponse(inner);
  const seen: (string | number | null)[][] = [];
  const { handler, server, port } = await serve((req, res) => {
    if (req.url === '/inner') return; // held: its response outlives this call
    handler.listener(inner, innerRes);
    // Back in the outer call: the outer request, older, is still the one on the board.
    seen.push([handler.inFlight, oldest()]);
    res.end('outer');
  }, board);
  try {
    await new Promise((resolve, reject) => http.get({ port, host: '127.0.0.1', path: '/outer' }, resolve).on('error', reject));
    while (handler.inFlight > 1) await new Promise((resolve) => setImmediate(resolve));
    // The outer request finished: the handed-over one, still in flight, is the oldest now.
    seen.push([handler.inFlight, oldest()]);
    innerRes.emit('close'); // as Node emits it when the response's connection goes
    seen.push([handler.inFlight, oldest()]);
    expect(seen).toEqual([
      [2, 'GET /outer'],
      [1, 'GET /inner'],
      [0, null],
    ]);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

it('HTTP/2: a stream whose response the app ended in its call within the initial flow-control window is finished as the call returns; a larger one when its stream closes', async () => {
  const metrics = createWorkerMetrics();
  const board = new ActivityBoard();
  // Larger than the 65,535 bytes a peer lets a stream send before its first WINDOW_UPDATE.
  const big = Buffer.alloc(256 * 1024, 'x');
  const afterCall: Record<string, number> = {};
  const handler: RequestHandler = handlerFor(
    (req, res) => {
      res.end(req.url === '/big' ? big : 'now');
      // A microtask runs once the request handler's listener, which called this app, has returned.
      queueMicrotask(() => (afterCall[req.url!] = handler.inFlight));
    },
    board,
    metrics,
  );
  const server = http2.createServer(handler.listener as unknown as (req: Http2ServerRequest, res: Http2ServerResponse) => void);
  applySessionTimers(server, { ...settings, keepalive: 0 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  const get = (path: string) =>
    new Promise<number>((resolve, reject) => {
      let bytes = 0;
      client
        .request({ ':path': path })
        .on('data', (chunk: Buffer) => (bytes += chunk.length))
        .on('end', () => resolve(bytes))
        .on('error', reject);
    });
  try {
    // keepalive 0: the session goes as soon as no stream is open, so both are sent at once; /now comes first.
    const goaway = new Promise((resolve) => client.once('goaway', resolve));
    expect(await Promise.all([get('/now'), get('/big')])).toEqual([3, big.length]);
    expect(afterCall).toEqual({ '/now': 0, '/big': 1 });
    while (handler.inFlight > 0) await new Promise((resolve) => setImmediate(resolve));
    const snapshot = await metrics.snapshot();
    const counted = snapshot.metrics.find((m) => m.name === 'http_requests_total')!.values;
    expect(counted.map((v) => [v.labels.status, v.value])).toEqual([['200', 2]]);
    // Each stream counted closed once, whichever way it finished: the session went once both were done.
    await goaway;
  } finally {
    client.destroy();
    server.close();
  }
});
