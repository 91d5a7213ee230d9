// node:http2 server scripts, gRPC included: captured like http ones and served on
// tsgunicorn's sockets from every worker, each stream with the per-request services.
import { spawn } from 'node:child_process';
import http2 from 'node:http2';
import path from 'node:path';
import tls from 'node:tls';
import { createRequire } from 'node:module';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { describe, expect, it } from 'vitest';
import { h2request, pseudoFields, rawH2Exchange, rawH2Get, goawayOf, stalledBodyReset, withSession } from '../helpers/http2.js';
import { metricSum, scrapeMetrics } from '../helpers/metrics.js';
import { freePort, isListening } from '../helpers/ports.js';
import { selfSigned } from '../helpers/tls.js';
import { FIXTURES, serversStoppedAfterEach, workerPids } from '../helpers/tsgunicorn.js';
import { until } from '../helpers/wait.js';

const start = serversStoppedAfterEach();
const script = (name: string) => path.join(FIXTURES, 'server-scripts', name);
const require = createRequire(import.meta.url);

async function startScript(name: string, args: string[] = [], env: NodeJS.ProcessEnv = {}) {
  const asked = await freePort();
  const server = await start(['--access-logfile', '-', ...args, script(name)], { env: { SCRIPT_PORT: String(asked), ...env } });
  return { server, asked };
}

/** The SETTINGS a new session to `url` gets from the server. */
const remoteSettings = (url: string) =>
  withSession(url, (session) => new Promise<http2.Settings>((resolve) => session.once('remoteSettings', resolve)));

/** Calls `call` until `count` distinct worker pids answered, and returns them. */
async function distinctPids(count: number, call: () => Promise<number>): Promise<number[]> {
  const seen = new Set<number>();
  await until(`${count} distinct workers answering`, async () => {
    seen.add(await call());
    return seen.size >= count;
  });
  return [...seen].sort();
}

describe('a node:http2 server script', () => {
  it('is served from 2 workers on tsgunicorn’s socket, never on its own port, with its listening event, callback and address', async () => {
    const { server, asked } = await startScript('http2.mjs', ['-w', '2']);
    const pids = await distinctPids(2, async () => {
      const reply = await h2request(`${server.url}/hello?x=1`);
      const seen = JSON.parse(reply.body) as { pid: number; httpVersion: string; address: { port: number }; listeningEvents: number };
      expect(seen).toMatchObject({ httpVersion: '2.0', address: { port: server.port }, listeningEvents: 2 });
      return seen.pid;
    });
    expect(pids).toEqual((await workerPids(server.proc.pid!)).sort());
    expect(await isListening(asked)).toBe(false);
    await server.waitFor(/^127\.0\.0\.1 - - \[.*\] "GET \/hello\?x=1 HTTP\/2\.0" 200 \d+ "-" "-"$/m);
  });

  it('sees the listeners it added on its server and no others, as under plain node', async () => {
    const plainPort = await freePort();
    const plain = spawn(process.execPath, [script('http2.mjs')], {
      env: { ...process.env, SCRIPT_PORT: String(plainPort) },
      stdio: 'inherit',
    });
    try {
      await until('plain node listening', () => plain.exitCode === null && isListening(plainPort));
      const underNode = JSON.parse((await h2request(`http://127.0.0.1:${plainPort}/listeners`)).body) as Record<string, number>;
      const { server } = await startScript('http2.mjs');
      // tsgunicorn's own session handlers (drain, timers) and its 'close' watch run from the server's emit instead.
      expect(JSON.parse((await h2request(`${server.url}/listeners`)).body)).toEqual(underNode);
    } finally {
      plain.kill('SIGKILL');
    }
  });

  it('refuses what HTTP/1.1 refuses too: a second Host or Content-Type, a Host that is not :authority; control characters never reach the app', async () => {
    const { server } = await startScript('http2.mjs', ['-w', '1']);
    const base = pseudoFields();
    expect(await rawH2Get(server.port, base)).toBe(200);
    expect(await rawH2Get(server.port, [...base, ['host', 'example.com']])).toBe(200);
    expect(await rawH2Get(server.port, [...base, ['host', 'other.example']])).toBe(400);
    // nghttp2 itself resets a stream with a second Host (RFC 9113 §8.3.1 makes it malformed).
    expect(await rawH2Get(server.port, [...base, ['host', 'example.com'], ['host', 'example.com']])).toBe('reset');
    // nghttp2 resets a stream whose :path has a control character, and drops a
    // field whose value has one: the app never sees it.
    expect(await rawH2Get(server.port, [...base.slice(0, 3), [':path', '/a\x7fb']])).toBe('reset');
    const withControls = [...base.slice(0, 3), [':path', '/raw-headers']] as [string, string][];
    for (const control of ['\x01', '\x1f', '\x7f']) {
      const reply = await rawH2Exchange(server.port, [...withControls, ['x-note', `a${control}b`], ['x-kept', 'yes']]);
      expect(reply).toEqual({ status: 200, body: JSON.stringify([...withControls.flat(), 'x-kept', 'yes']) });
    }
    expect(await rawH2Get(server.port, [...base, ['content-type', 'a'], ['content-type', 'b']])).toBe(400);
  });

  it('limit_request_fields and limit_request_line apply to its streams', async () => {
    const { server } = await startScript('http2.mjs', ['-w', '1', '--limit-request-fields', '3', '--limit-request-line', '64']);
    const fields = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-field-${i}`, 'v']));
    expect((await h2request(server.url, { headers: fields(3) })).status).toBe(200);
    expect((await h2request(server.url, { headers: fields(4) })).status).toBe(431);
    expect((await h2request(`${server.url}/${'a'.repeat(60)}`)).status).toBe(414);
  });

  it('timeout: the master kills a worker hung in a stream, naming the stream', async () => {
    const { server } = await startScript('http2.mjs', ['-w', '1', '--timeout', '2']);
    void h2request(`${server.url}/busy`).catch(() => {});
    const line = await server.waitFor(/WORKER TIMEOUT/, 20000);
    expect(line).toMatch(/\[CRITICAL\] WORKER TIMEOUT \(pid:\d+\): GET \/busy in flight for \d+\.\d s/);
  });

  it('keepalive: a session with no stream open for keepalive seconds gets GOAWAY; one with a stream open longer is not cut', async () => {
    const { server } = await startScript('http2.mjs', ['-w', '2', '--keep-alive', '1']);
    await withSession(server.url, async (session) => {
      const goaway = goawayOf(session);
      // The stream stays open 2.5 s, past keepalive: the session is busy, not idle.
      expect(await h2request(`${server.url}/slow?ms=2500`, { session })).toMatchObject({ status: 200, body: '"slow done"' });
      expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    });
  });

  it('header_timeout: a session that opens no stream in time gets GOAWAY', async () => {
    const { server } = await startScript('http2.mjs', ['-w', '2', '--header-timeout', '1']);
    await withSession(server.url, async (session) => expect(await goawayOf(session)).toBe(http2.constants.NGHTTP2_NO_ERROR));
  });

  it('request_timeout: a stream whose body stalls is reset; the session goes on', async () => {
    const { server } = await startScript('http2.mjs', ['-w', '2', '--request-timeout', '1']);
    await withSession(server.url, async (session) => {
      expect(await stalledBodyReset(session, '/upload')).toBe(http2.constants.NGHTTP2_CANCEL);
      const posted = await h2request(`${server.url}/upload`, { session, headers: { ':method': 'POST' }, body: 'whole' });
      expect(JSON.parse(posted.body)).toEqual({ body: 'whole' });
    });
  });

  it('over its own TLS with allowHTTP1: HTTP/2 and HTTP/1.1 clients on one socket, each idle connection closed after keepalive', async () => {
    const pair = selfSigned();
    const { server } = await startScript('http2-tls.mjs', ['-w', '2', '--keep-alive', '1'], {
      TLS_CERT: pair.certfile,
      TLS_KEY: pair.keyfile,
    });
    const origin = `https://127.0.0.1:${server.port}`;
    const session = http2.connect(origin, { ca: pair.cert });
    try {
      const goaway = goawayOf(session);
      expect(await h2request(origin, { session })).toMatchObject({ status: 200, body: 'HTTP/2.0' });
      expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    } finally {
      session.close();
    }
    // HTTP/1.1 by ALPN: node:http serves it, with keepalive as for an http script.
    const socket = tls.connect({ host: '127.0.0.1', port: server.port, ca: pair.cert, ALPNProtocols: ['http/1.1'] });
    let received = '';
    socket.setEncoding('utf8').on('data', (d: string) => (received += d));
    const closed = new Promise((resolve, reject) => socket.once('close', resolve).once('error', reject));
    socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await closed;
    expect(received).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*\r\nKeep-Alive: timeout=1\r\n[^]*\r\n\r\nHTTP\/1\.1$/);
  });

  it('its sessions open with tsgunicorn’s http2_* limits, except each SETTINGS value the app passed itself', async () => {
    const { server: plain } = await startScript('http2.mjs', ['-w', '2']);
    // Gunicorn's 100, not node:http2's unlimited default.
    expect(await remoteSettings(plain.url)).toMatchObject({ maxConcurrentStreams: 100, initialWindowSize: 65535 });
    const limits = ['--http2-max-concurrent-streams', '7', '--http2-initial-window-size', '100000'];
    const { server: own } = await startScript('http2.mjs', ['-w', '2', ...limits], {
      SESSION_SETTINGS: JSON.stringify({ maxConcurrentStreams: 11 }),
    });
    expect(await remoteSettings(own.url)).toMatchObject({ maxConcurrentStreams: 11, initialWindowSize: 100000 });
  });

  it('the app’s own server.setTimeout stays: an inactive session closes after it, well before tsgunicorn’s timers', async () => {
    const { server } = await startScript('http2.mjs', ['-w', '2', '--keep-alive', '120', '--header-timeout', '120'], {
      SESSION_TIMEOUT_MS: '300',
    });
    const session = http2.connect(server.url);
    session.on('error', () => {});
    expect((await h2request(server.url, { session })).status).toBe(200);
    await new Promise((resolve) => session.once('close', resolve));
  });

  it('max_connections counts sessions: a full worker accepts the next session only once one closes', async () => {
    const { server } = await startScript('http2.mjs', ['-w', '1', '--max-connections', '1']);
    const first = http2.connect(server.url);
    let firstClosed = false;
    try {
      expect((await h2request(server.url, { session: first })).status).toBe(200);
      await server.waitFor(/\[WARNING\] Reached max_connections \(1\) once: stopped accepting/);
      const second = h2request(`${server.url}/second`).then((reply) => ({ reply, firstClosed }));
      // The full worker goes on serving the session it has.
      expect((await h2request(server.url, { session: first })).status).toBe(200);
      firstClosed = true;
      first.close();
      const { reply, firstClosed: answeredAfterClose } = await second;
      expect(JSON.parse(reply.body)).toMatchObject({ url: '/second' });
      expect(answeredAfterClose).toBe(true);
    } finally {
      first.close();
    }
  });

  it('on the core API (a stream listener): :scheme from the transport, the client a trusted proxy names in the access log', async () => {
    const { server } = await startScript('http2-streams.mjs', ['-w', '2']);
    const reply = await h2request(`${server.url}/core?x=1`, { headers: { ':scheme': 'https', 'x-forwarded-for': '198.51.100.9' } });
    expect(JSON.parse(reply.body)).toMatchObject({ scheme: 'http', path: '/core?x=1' });
    await server.waitFor(/^198\.51\.100\.9 - - \[.*\] "GET \/core\?x=1 HTTP\/2\.0" 200 \d+ "-" "-"$/m);
  });

  it('max_requests counts streams: a worker serving many streams on one session is recycled', async () => {
    const { server } = await startScript('http2.mjs', ['-w', '1', '--max-requests', '5']);
    const first = (await workerPids(server.proc.pid!))[0];
    for (let i = 0; i < 5; i++) await h2request(server.url);
    await until('the worker recycled after 5 streams', async () => {
      const pids = await workerPids(server.proc.pid!);
      return pids.length === 1 && pids[0] !== first;
    });
  });
});

describe('a @grpc/grpc-js server', () => {
  const definition = protoLoader.loadSync(script('greeter.proto'));
  type Reply = { message: string; pid: number };
  type GreeterClient = grpc.Client & {
    sayHello(request: { name: string }, callback: (err: grpc.ServiceError | null, reply: Reply) => void): void;
    countDown(request: { from: number }): grpc.ClientReadableStream<Reply>;
    collect(callback: (err: grpc.ServiceError | null, reply: Reply) => void): grpc.ClientWritableStream<{ name: string }>;
  };
  const { greeter } = grpc.loadPackageDefinition(definition) as unknown as {
    greeter: { Greeter: new (address: string, credentials: grpc.ChannelCredentials) => GreeterClient };
  };
  // A new client has a channel (one HTTP/2 connection) of its own.
  const client = (port: number) => new greeter.Greeter(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  /** The replies of a whole server-streaming call. */
  const countDown = (c: GreeterClient, from: number) =>
    new Promise<Reply[]>((resolve, reject) => {
      const replies: Reply[] = [];
      const call = c.countDown({ from });
      call.on('data', (r: Reply) => replies.push(r));
      call.on('end', () => resolve(replies));
      call.on('error', reject);
    });

  it('answers unary and server-streaming calls from 2 workers, and the standard health check', async () => {
    const { server, asked } = await startScript('grpc.mjs', ['-w', '2']);
    const unaryPids = await distinctPids(2, async () => {
      const c = client(server.port);
      try {
        const reply = await new Promise<Reply>((resolve, reject) =>
          c.sayHello({ name: 'tsgunicorn' }, (err, r) => (err ? reject(err) : resolve(r))),
        );
        expect(reply.message).toBe('Hello tsgunicorn');
        return reply.pid;
      } finally {
        c.close();
      }
    });
    const streamPids = await distinctPids(2, async () => {
      const c = client(server.port);
      try {
        const replies = await countDown(c, 3);
        expect(replies.map((r) => r.message)).toEqual(['3', '2', '1', '0']);
        return replies[0]!.pid;
      } finally {
        c.close();
      }
    });
    const workers = (await workerPids(server.proc.pid!)).sort();
    expect(unaryPids).toEqual(workers);
    expect(streamPids).toEqual(workers);
    expect(await isListening(asked)).toBe(false);

    const health = require('grpc-health-check') as { service: grpc.ServiceDefinition };
    const HealthClient = grpc.makeGenericClientConstructor(health.service, 'Health');
    const healthClient = new HealthClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      check(request: { service: string }, callback: (err: grpc.ServiceError | null, reply: { status: string }) => void): void;
    };
    for (const service of ['', 'greeter.Greeter']) {
      const reply = await new Promise<{ status: string }>((resolve, reject) =>
        healthClient.check({ service }, (err, r) => (err ? reject(err) : resolve(r))),
      );
      expect(reply.status).toBe('SERVING');
    }
    healthClient.close();

    // Streams the server takes itself meet the same header policy.
    const call: [string, string][] = [
      ...pseudoFields('/grpc.health.v1.Health/Check', 'POST'),
      ['content-type', 'application/grpc'],
      ['te', 'trailers'],
    ];
    expect(await rawH2Get(server.port, call)).toBe(200);
    expect(await rawH2Get(server.port, [...call, ['host', 'other.example']])).toBe(400);
    await server.waitFor(/"POST \/greeter\.Greeter\/SayHello HTTP\/2\.0" 200 \d+ "-" "grpc-node-js\//);
    await server.waitFor(/"POST \/greeter\.Greeter\/CountDown HTTP\/2\.0" 200 \d+ "-" "grpc-node-js\//);
    await server.waitFor(/"POST \/grpc\.health\.v1\.Health\/Check HTTP\/2\.0" 200 /);
  });

  it('HUP: a server-streaming call in flight finishes on its old worker, the next call goes to the new one', async () => {
    const { server } = await startScript('grpc.mjs', ['-w', '1']);
    const c = client(server.port);
    try {
      const replies: Reply[] = [];
      const call = c.countDown({ from: 150 });
      const ended = new Promise<void>((resolve, reject) => call.on('end', resolve).on('error', reject));
      await new Promise<void>((resolve) =>
        call.on('data', (r: Reply) => {
          if (replies.push(r) === 1) resolve();
        }),
      );
      server.signal('SIGHUP');
      await server.waitFor(/Reloaded/);
      await ended;
      expect(replies).toHaveLength(151);
      const old = replies[0]!.pid;
      expect(new Set(replies.map((r) => r.pid))).toEqual(new Set([old]));
      // The channel got GOAWAY: its next call opens a connection, to the new worker.
      const next = await new Promise<Reply>((resolve, reject) => c.sayHello({ name: 'n' }, (err, r) => (err ? reject(err) : resolve(r))));
      expect(next.pid).not.toBe(old);
    } finally {
      c.close();
    }
  });

  it('keepalive and request_timeout: a server-streaming call open past both is not cut; the channel idle past keepalive gets GOAWAY and reconnects', async () => {
    const { server } = await startScript('grpc.mjs', ['-w', '2', '--keep-alive', '1', '--request-timeout', '1']);
    const c = client(server.port);
    try {
      // 301 replies 10 ms apart: open 3 s at least, past both timeouts.
      expect(await countDown(c, 300)).toHaveLength(301);
      const channel = c.getChannel();
      expect(channel.getConnectivityState(false)).toBe(grpc.connectivityState.READY);
      // No call open for a second: the worker's GOAWAY takes the channel out of READY.
      await new Promise<void>((resolve, reject) =>
        channel.watchConnectivityState(grpc.connectivityState.READY, Date.now() + 60000, (err) => (err ? reject(err) : resolve())),
      );
      expect(channel.getConnectivityState(false)).not.toBe(grpc.connectivityState.READY);
      const next = await new Promise<Reply>((resolve, reject) =>
        c.sayHello({ name: 'again' }, (err, r) => (err ? reject(err) : resolve(r))),
      );
      expect(next.message).toBe('Hello again');
    } finally {
      c.close();
    }
  });

  it('request_timeout: a client-streaming call still sending after it is reset like a slow upload; the worker serves on', async () => {
    const { server } = await startScript('grpc.mjs', ['-w', '1', '--request-timeout', '1']);
    const c = client(server.port);
    try {
      const collect = (then: 'end' | 'stall' | 'cancel') =>
        new Promise<Reply>((resolve, reject) => {
          const call = c.collect((err, reply) => (err ? reject(err) : resolve(reply)));
          call.write({ name: 'a' });
          call.write({ name: 'b' });
          if (then === 'end') call.end();
          if (then === 'cancel') call.cancel();
        });
      const answered = await collect('end');
      expect(answered.message).toBe('a b');
      const reset = (await collect('stall').catch((e: unknown) => e)) as grpc.ServiceError;
      expect(reset.code).toBe(grpc.status.CANCELLED);
      // grpc-js's words for a stream the server reset with CANCEL.
      expect(reset.details).toBe('Call cancelled');
      // A call the client cancels before any answer ends the same way for the worker.
      expect(((await collect('cancel').catch((e: unknown) => e)) as grpc.ServiceError).code).toBe(grpc.status.CANCELLED);
      // Streams that closed unanswered are logged, and the same worker serves on.
      await server.waitFor(/"POST \/greeter\.Greeter\/Collect HTTP\/2\.0" 0 /);
      const next = await new Promise<Reply>((resolve, reject) => c.sayHello({ name: 'n' }, (err, r) => (err ? reject(err) : resolve(r))));
      expect(next.pid).toBe(answered.pid);
      expect(server.output()).not.toMatch(/Uncaught exception/);
    } finally {
      c.close();
    }
  });

  it('its grpc.max_concurrent_streams is the SETTINGS value its sessions open with, not http2_max_concurrent_streams', async () => {
    const { server } = await startScript('grpc.mjs', ['-w', '1', '--http2-max-concurrent-streams', '7'], { GRPC_MAX_STREAMS: '13' });
    expect((await remoteSettings(server.url)).maxConcurrentStreams).toBe(13);
  });

  it('its calls are counted in the metrics', async () => {
    const metricsPort = await freePort();
    const { server } = await startScript('grpc.mjs', ['-w', '1', '--metrics-bind', `127.0.0.1:${metricsPort}`]);
    const c = client(server.port);
    try {
      for (let i = 0; i < 3; i++) {
        await new Promise<Reply>((resolve, reject) => c.sayHello({ name: 'n' }, (err, r) => (err ? reject(err) : resolve(r))));
      }
    } finally {
      c.close();
    }
    await until('3 calls counted', async () => {
      // The master may answer on the metrics port a moment after the workers boot.
      const text = await scrapeMetrics(metricsPort).then(
        (m) => m.text,
        () => '',
      );
      return metricSum(text, 'http_requests_total', 'method="POST"') === 3;
    });
  });

  it('timeout: a worker hung in a call is killed, the call named', async () => {
    const { server } = await startScript('grpc.mjs', ['-w', '1', '--timeout', '2']);
    const c = client(server.port);
    c.makeUnaryRequest(
      '/greeter.Greeter/Spin',
      (x: Buffer) => x,
      (x: Buffer) => x,
      Buffer.alloc(0),
      () => {},
    );
    const line = await server.waitFor(/WORKER TIMEOUT/, 20000);
    c.close();
    expect(line).toMatch(/\[CRITICAL\] WORKER TIMEOUT \(pid:\d+\): POST \/greeter\.Greeter\/Spin in flight for \d+\.\d s/);
  });
});
