// Issue 13's acceptance: real framework apps, each written as its guide writes
// it and ending in its own listen(), served unmodified by tsgunicorn on its own
// sockets, with everything tsgunicorn does per request.
import path from 'node:path';
import { io as connectSocket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildNest, buildNext, FRAMEWORKS } from '../helpers/framework-builds.js';
import { load, request, streamed } from '../helpers/http.js';
import { metricSum, scrapeMetrics } from '../helpers/metrics.js';
import { freePort, isListening, listenersOn } from '../helpers/ports.js';
import { serversStoppedAfterEach, startServer, workerPids, type Running } from '../helpers/tsgunicorn.js';
import { sleep, until } from '../helpers/wait.js';

interface Framework {
  name: string;
  /** The file served as APP (the built one for NestJS and Next.js). */
  entry: () => string;
  /** The port the app's own listen() asks for. */
  appPort: number;
  /** NestJS and Next.js read PORT, as their docs run them: the user's PORT wins over tsgunicorn's. */
  env?: NodeJS.ProcessEnv;
  /** Also tested for HUP under load and a timeout kill (the issue asks it of Express and Next.js). */
  lifecycle?: boolean;
  /** The status of a POST that succeeded: NestJS answers 201 Created unless told otherwise. */
  postStatus?: number;
}

const built = { nest: '', next: '' };
const fixture = (rel: string) => path.join(FRAMEWORKS, rel);

const frameworks: Framework[] = [
  { name: 'Express', entry: () => fixture('express/app.js'), appPort: 3101, lifecycle: true },
  { name: 'Fastify', entry: () => fixture('fastify/server.js'), appPort: 3102 },
  { name: 'Koa', entry: () => fixture('koa/app.js'), appPort: 3103 },
  { name: 'NestJS', entry: () => built.nest, appPort: 3104, env: { PORT: '3104' }, postStatus: 201 },
  { name: 'Next.js', entry: () => built.next, appPort: 3105, env: { PORT: '3105' }, lifecycle: true },
  { name: 'socket.io', entry: () => fixture('socketio/index.js'), appPort: 3106 },
  { name: 'http.createServer', entry: () => fixture('plain/server.js'), appPort: 3107 },
];

beforeAll(async () => {
  // One after the other: the machine may have 2 cores, and each build's time is reported.
  const nest = await buildNest();
  const next = await buildNext();
  built.nest = nest.entry;
  built.next = next.entry;
  const took = (b: { seconds: number }) => (b.seconds ? `built in ${b.seconds.toFixed(1)} s` : 'cached');
  console.log(`NestJS ${took(nest)}; Next.js ${took(next)}`);
}, 600_000);

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const PAYLOAD = { framework: 'any', items: [1, 2, 3], nested: { ok: true, text: 'é ✓' } };
const postJson = (url: string, body: unknown) =>
  request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

for (const fw of frameworks) {
  describe(`${fw.name}, served unmodified`, () => {
    let server: Running;
    let metricsPort: number;
    beforeAll(async () => {
      metricsPort = await freePort();
      server = await startServer(['-w', '2', '--access-logfile', '-', '--metrics-bind', `127.0.0.1:${metricsPort}`, fw.entry()], {
        env: fw.env,
      });
    });
    afterAll(() => server?.stop());

    it("answers from 2 distinct workers on tsgunicorn's address", async () => {
      const workers = await workerPids(server.proc.pid!);
      expect(workers).toHaveLength(2);
      const seen = new Set<number>();
      await until(
        'both workers answered',
        async () => {
          const reply = await request(`${server.url}/pid`);
          expect(reply.status).toBe(200);
          seen.add(Number(reply.body));
          return seen.size === 2;
        },
        15000,
      );
      expect([...seen].sort()).toEqual(workers.sort());
    });

    it(`never binds the app's own port ${fw.appPort}, and says where it serves instead`, async () => {
      expect(listenersOn(fw.appPort)).toEqual([]);
      expect(await isListening(fw.appPort)).toBe(false);
      // Only the master's socket: no worker bound tsgunicorn's port on an address of its own.
      expect(listenersOn(server.port)).toHaveLength(1);
      expect(server.output()).toMatch(new RegExp(`asked for \\S*:${fw.appPort}\\b.*serving on \\S*:${server.port}\\b`));
    });

    const postStatus = fw.postStatus ?? 200;

    it('echoes a JSON POST', async () => {
      const reply = await postJson(`${server.url}/echo`, { ...PAYLOAD, framework: fw.name });
      expect(reply.status).toBe(postStatus);
      expect(reply.headers['content-type']).toMatch(/^application\/json/);
      expect(JSON.parse(reply.body)).toEqual({ ...PAYLOAD, framework: fw.name });
    });

    it('streams a chunked response as it is written', async () => {
      const reply = await streamed(`${server.url}/stream`);
      expect(reply.status).toBe(200);
      expect(reply.headers['transfer-encoding']).toBe('chunked');
      expect(reply.body).toBe('line 0\nline 1\nline 2\nline 3\nline 4\n');
      // The lines are written 100 ms apart: a buffered body would arrive at once.
      expect(reply.arrivals.length).toBeGreaterThanOrEqual(3);
      expect(reply.arrivals.at(-1)! - reply.arrivals[0]!).toBeGreaterThanOrEqual(250);
    });

    it('writes an access-log line for each request', async () => {
      const tag = `log-${Date.now()}`;
      const replies = [
        { method: 'GET', route: '/pid', reply: await request(`${server.url}/pid?tag=${tag}`) },
        { method: 'POST', route: '/echo', reply: await postJson(`${server.url}/echo?tag=${tag}`, PAYLOAD) },
        { method: 'GET', route: '/stream', reply: await streamed(`${server.url}/stream?tag=${tag}`) },
      ];
      for (const { method, route, reply } of replies) {
        const line = new RegExp(
          `^127\\.0\\.0\\.1 - - \\[[^\\]]+\\] "${method} ${escape(route)}\\?tag=${tag} HTTP/1\\.1" ${reply.status} (\\d+) "-" "-"$`,
        );
        // The lines are written as the responses end: a moment is plenty.
        const bytes = Number(line.exec(await server.waitFor(line, 3000))![1]);
        const body = Buffer.byteLength(reply.body);
        // %(b)s is the declared Content-Length; a chunked body is counted as the
        // socket wrote it, chunk framing included (src/worker/request-handler.ts).
        if (reply.headers['content-length'] !== undefined) expect(bytes).toBe(body);
        else expect(bytes).toBeGreaterThanOrEqual(body);
      }
    });

    it('counts its requests in the metrics, by method and status', async () => {
      const count = async (labels: string) => metricSum((await scrapeMetrics(metricsPort)).text, 'http_requests_total', labels);
      const GET = 'method="GET",status="200"';
      const POST = `method="POST",status="${postStatus}"`;
      const before = { get: await count(GET), post: await count(POST) };
      for (let i = 0; i < 10; i++) expect((await request(`${server.url}/pid`)).status).toBe(200);
      expect((await postJson(`${server.url}/echo`, PAYLOAD)).status).toBe(postStatus);
      // A response is counted once it has been sent, a moment after the client has it.
      await until('requests counted', async () => (await count(GET)) >= before.get + 10 && (await count(POST)) >= before.post + 1);
      expect(await count(GET)).toBe(before.get + 10);
      expect(await count(POST)).toBe(before.post + 1);
    });

    if (fw.name === 'socket.io') {
      it('echoes an event over the websocket transport, from both workers', async () => {
        const workers = await workerPids(server.proc.pid!);
        const seen = new Set<number>();
        await until(
          'both workers answered over websockets',
          async () => {
            // No long-polling start: that needs sticky sessions, which no prefork server gives.
            const socket = connectSocket(server.url, { transports: ['websocket'], reconnection: false, forceNew: true });
            try {
              await new Promise((resolve, reject) => {
                socket.once('connect', () => resolve(undefined));
                socket.once('connect_error', reject);
              });
              const reply = (await socket.timeout(5000).emitWithAck('echo', { hello: 'ws' })) as { msg: unknown; pid: number };
              expect(reply.msg).toEqual({ hello: 'ws' });
              seen.add(reply.pid);
            } finally {
              socket.disconnect();
            }
            return seen.size === 2;
          },
          15000,
        );
        expect([...seen].sort()).toEqual(workers.sort());
      });

      it("answers engine.io's handshake through the request listener socket.io put on the server", async () => {
        // socket.io replaces the server's 'request' listeners with one of its own that passes
        // other paths on to Express: serving the server must go through that listener.
        const reply = await request(`${server.url}/socket.io/?EIO=4&transport=polling`);
        expect(reply.status).toBe(200);
        expect(reply.body).toMatch(/^0\{"sid":"[^"]+","upgrades":\["websocket"\]/);
      });
    }
  });
}

const start = serversStoppedAfterEach();

describe('Fastify, served on an address other than 127.0.0.1', () => {
  // listen({ port }) means host 'localhost': Fastify listens, reads server.address(),
  // and starts one more server on each other address localhost resolves to (127.0.0.1,
  // and on most machines ::1), at the same port, ignoring its errors.
  for (const bind of ['0.0.0.0:0', '[::1]:0']) {
    it(`on ${bind}: both workers stay up, and Fastify's second server for localhost binds nothing`, async () => {
      const server = await start(['-w', '2', '-b', bind, fixture('fastify/server.js')]);
      const url = `http://${bind.startsWith('[::1]') ? '[::1]' : '127.0.0.1'}:${server.port}`;
      const workers = await workerPids(server.proc.pid!);
      const seen = new Set<number>();
      await until(
        'both workers answered',
        async () => {
          seen.add(Number((await request(`${url}/pid`)).body));
          return seen.size === 2;
        },
        15000,
      );
      expect(server.output()).not.toMatch(/Uncaught exception/);
      // The same app on another address: not a second server to warn about.
      expect(server.output()).not.toMatch(/another HTTP server/);
      expect([...seen].sort()).toEqual(workers.sort());
      expect(listenersOn(server.port)).toHaveLength(1);
      expect(listenersOn(3102)).toEqual([]);
    });
  }
});

for (const fw of frameworks.filter((f) => f.lifecycle)) {
  describe(`${fw.name}, reload and timeout`, () => {
    it('HUP under load from 20 keep-alive clients: 0 failed requests, and the new workers serve', async () => {
      const server = await start(['-w', '2', fw.entry()], { env: fw.env });
      const before = await workerPids(server.proc.pid!);
      const loadRun = load({ url: `${server.url}/pid`, clients: 20, durationMs: 8000, keepAlive: true });
      // Reload in the middle of the load, not before it starts.
      await sleep(2000);
      server.signal('SIGHUP');
      await server.waitFor(/Reloaded/);
      const result = await loadRun;
      expect(result.failed, result.errors.slice(0, 5).join(', ')).toBe(0);
      const answered = [...result.bodies.keys()].map(Number);
      // Both generations served the load (20 connections opened at once may all land on one worker).
      expect(answered.some((pid) => before.includes(pid))).toBe(true);
      expect(answered.some((pid) => !before.includes(pid))).toBe(true);
      // Drained, the old generation leaves.
      await until('the old workers gone', async () => {
        const pids = await workerPids(server.proc.pid!);
        return pids.length === 2 && !pids.some((pid) => before.includes(pid));
      });
    });

    it('TERM lets an in-flight streamed response finish, then the master exits 0', async () => {
      const server = await start(['-w', '2', '--graceful-timeout', '10', fw.entry()], { env: fw.env });
      const { promise: head, resolve: onHead } = Promise.withResolvers<void>();
      const reply = streamed(`${server.url}/stream`, onHead);
      // The first line is out and four are still to come.
      await head;
      server.signal('SIGTERM');
      expect(await reply).toMatchObject({ status: 200, body: 'line 0\nline 1\nline 2\nline 3\nline 4\n' });
      expect(await server.exited()).toBe(0);
    });

    it('a timeout kill names the hung route, and a replacement serves', async () => {
      const server = await start(['-w', '2', '-t', '2', fw.entry()], { env: fw.env });
      const before = await workerPids(server.proc.pid!);
      const hung = request(`${server.url}/busy?ms=60000`).catch((err: Error) => err);
      const line = await server.waitFor(/WORKER TIMEOUT/, 15000);
      expect(line).toMatch(/\[CRITICAL\] WORKER TIMEOUT \(pid:\d+\): GET \/busy\?ms=60000 in flight for \d+\.\d s/);
      const killed = Number(/\(pid:(\d+)\)/.exec(line)![1]);
      expect(before).toContain(killed);
      expect(await hung).toBeInstanceOf(Error);
      await until('a replacement worker', async () => {
        const pids = await workerPids(server.proc.pid!);
        return pids.length === 2 && !pids.includes(killed);
      });
      for (let i = 0; i < 4; i++) expect((await request(`${server.url}/pid`)).status).toBe(200);
    });
  });
}
