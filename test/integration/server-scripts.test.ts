// Server scripts: apps that start their own server with listen(), served as they
// are on tsgunicorn's sockets, with everything tsgunicorn does per request.
import { mkdtempSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { load, request } from '../helpers/http.js';
import { healthCheckArgs, healthCheckPassed } from '../helpers/metrics.js';
import { freePort, isListening } from '../helpers/ports.js';
import { scratch } from '../helpers/operator.js';
import { selfSigned } from '../helpers/tls.js';
import { FIXTURES, runCli, serversStoppedAfterEach, workerPids } from '../helpers/tsgunicorn.js';
import { sleep, until } from '../helpers/wait.js';

const start = serversStoppedAfterEach();
const script = (name: string) => path.join(FIXTURES, 'server-scripts', name);
const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'tsg-script-'));

/** Starts a server script with SCRIPT_PORT, the port it asks for (which must never be bound). */
async function startScript(name: string, args: string[] = [], env: NodeJS.ProcessEnv = {}) {
  const asked = await freePort();
  const server = await start([...args, script(name)], { env: { SCRIPT_PORT: String(asked), ...env } });
  return { server, asked };
}

/** Requests until `count` distinct bodies (worker pids) answered. */
async function distinctBodies(url: string, count: number): Promise<Set<string>> {
  const seen = new Set<string>();
  await until(`${count} distinct workers answering ${url}`, async () => {
    seen.add((await request(url)).body);
    return seen.size >= count ? true : undefined;
  });
  return seen;
}

describe('a server script is served on tsgunicorn’s sockets', () => {
  it('from every worker, never on the port it asked for, with its listening event, callback and real address', async () => {
    const { server, asked } = await startScript('plain.mjs', ['-w', '2']);
    const pids = await distinctBodies(`${server.url}/pid`, 2);
    expect([...pids].map(Number).sort()).toEqual((await workerPids(server.proc.pid!)).sort());
    expect(await isListening(asked)).toBe(false);
    const seen = JSON.parse((await request(`${server.url}/server`)).body) as { address: { port: number }; listeningEvents: number };
    expect(seen.address.port).toBe(server.port);
    // The 'listening' listener and the listen() callback each ran once.
    expect(seen.listeningEvents).toBe(2);
    const redirect = `${script('plain.mjs')} asked for :${asked}; serving on http://127.0.0.1:${server.port}`;
    expect(
      server
        .output()
        .split('\n')
        .filter((l) => l.includes(redirect)),
    ).toHaveLength(1);
    expect(server.output()).toMatch(new RegExp(`Booted 2 workers \\(server script ${script('plain.mjs')}\\)`));
  });

  it.each([
    ['plain.cjs', /^cjs \d+$/],
    ['typed.ts', /^typed GET$/],
  ])('%s (CommonJS, TypeScript)', async (name, body) => {
    const { server, asked } = await startScript(name, ['-w', '1']);
    expect((await request(server.url)).body).toMatch(body);
    expect(await isListening(asked)).toBe(false);
  });

  it('a script that listens after asynchronous set-up, or awaits its own listening event', async () => {
    for (const name of ['late-listen.mjs', 'awaits-listening.mjs']) {
      const { server } = await startScript(name, ['-w', '1']);
      expect((await request(server.url)).body).toMatch(/^(late|awaited \d+)$/);
      await server.stop();
    }
  });

  it('a directory: its package.json main', async () => {
    const { server, asked } = await startScript('package-dir', ['-w', '2']);
    expect((await request(server.url)).body).toMatch(/^package main \d+$/);
    expect(await isListening(asked)).toBe(false);
  });

  it('every bound socket (TCP and unix) reaches the one server', async () => {
    const sock = path.join(tmp(), 'app.sock');
    const { server } = await startScript('plain.mjs', ['-w', '1', '-b', '127.0.0.1:0', '-b', `unix:${sock}`]);
    const viaUnix = await new Promise<string>((resolve, reject) => {
      http
        .get({ socketPath: sock, path: '/pid' }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve(body));
        })
        .on('error', reject);
    });
    expect(viaUnix).toMatch(/^\d+$/);
    expect((await request(`${server.url}/pid`)).body).toBe(viaUnix);
  });

  it('PORT is tsgunicorn’s port unless the user set it', async () => {
    const { server } = await startScript('plain.mjs', ['-w', '1']);
    expect((await request(`${server.url}/env?name=PORT`)).body).toBe(String(server.port));
    await server.stop();
    const set = await startScript('plain.mjs', ['-w', '1', '-e', 'PORT=1234']);
    expect((await request(`${set.server.url}/env?name=PORT`)).body).toBe('1234');
  });

  it('a framework object with listen() is served through the server its listen() starts', async () => {
    const server = await start(['-w', '1', script('listen-object.mjs')]);
    expect((await request(server.url)).body).toBe('framework object');
    expect(server.output()).toMatch(/Booted 1 worker \(server script/);
  });

  it('an exported Fastify instance is readied and served through its router', async () => {
    const server = await start(['-w', '2', path.join(FIXTURES, 'fastify-export.mjs')]);
    await distinctBodies(`${server.url}/pid`, 2);
    const echoed = await request(`${server.url}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"n":1}',
    });
    expect(echoed).toMatchObject({ status: 200, body: '{"n":1}' });
  });

  it('an export that cannot be served says what was found and the two ways out', async () => {
    const result = await runCli(['-b', '127.0.0.1:0', '-w', '1', `${script('never-listens.mjs')}:settings`]);
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(
      /settings is an object with debug, which tsgunicorn cannot serve\. Either export the app .*, or let the file start its own server with listen\(\)/,
    );
  });

  it('--check-config says it is a server script and binds nothing', async () => {
    const asked = await freePort();
    const result = await runCli(['--check-config', script('plain.mjs')], { env: { SCRIPT_PORT: String(asked) } });
    expect(result).toMatchObject({
      code: 0,
      stdout: expect.stringMatching(new RegExp(`loads as a server script \\(it asks for :${asked}, which is never bound`)),
    });
  });
});

describe('more than one server, or none', () => {
  it('a second server is never bound: one warning per worker, the app goes on; a second server on the same port is the same app', async () => {
    const admin = await freePort();
    const { server, asked } = await startScript('second-server.mjs', ['-w', '2'], { ADMIN_PORT: String(admin) });
    expect((await request(server.url)).body).toBe('main');
    expect(await isListening(admin)).toBe(false);
    expect(await isListening(asked)).toBe(false);
    expect(await isListening(asked, '::1')).toBe(false);
    const warnings = server
      .output()
      .split('\n')
      .filter((l) => l.includes('[WARNING] The app started another HTTP server'));
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toContain(
      `asking for :${admin}; it is not bound, since tsgunicorn serves one server of the app on its sockets (:${asked}:`,
    );
    expect(server.output().match(/admin listening callback/g)).toHaveLength(2);
    expect(server.output()).not.toMatch(/EADDRINUSE/);
  });

  it('a script that neither exports an app nor listens fails at boot with exit 3, naming the file and what was expected', async () => {
    const result = await runCli(['-b', '127.0.0.1:0', '-w', '1', '-t', '1', script('never-listens.mjs')]);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(
      /never-listens\.mjs neither exports an app nor starts a server with listen\(\) within 1 s \(its exports: settings \(an object with debug\)\)\. Export the app .* or let the file call listen\(\) itself/,
    );
  });
});

describe('the same service as an exported app', () => {
  it('access log, metrics, JSON and streamed bodies, and limits', async () => {
    const metricsPort = await freePort();
    const { server } = await startScript('plain.mjs', [
      '-w',
      '2',
      '--access-logfile',
      '-',
      '--metrics-bind',
      `127.0.0.1:${metricsPort}`,
      '--limit-request-line',
      '100',
    ]);
    const echoed = await request(`${server.url}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"a":[1,2]}',
    });
    expect(echoed).toMatchObject({ status: 200, body: '{"a":[1,2]}' });
    const streamed = await request(`${server.url}/stream`);
    expect(streamed.headers['transfer-encoding']).toBe('chunked');
    expect(streamed.body).toBe('chunk 3\nchunk 2\nchunk 1\n');
    expect((await request(`${server.url}/${'x'.repeat(200)}`)).status).toBe(414);
    await server.waitFor(/"GET \/stream HTTP\/1\.1" 200 \d+ /);
    await server.waitFor(/"POST \/echo HTTP\/1\.1" 200 /);
    await until('metrics count the requests', async () => {
      const text = (await request(`http://127.0.0.1:${metricsPort}/metrics`)).body;
      return text.includes('http_requests_total{method="POST",status="200"} 1') &&
        text.includes('http_requests_total{method="GET",status="200"} 1')
        ? true
        : undefined;
    });
  });

  it('proxy trust: the access log shows the client a trusted proxy names', async () => {
    const { server } = await startScript('plain.mjs', ['-w', '1', '--access-logfile', '-', '--forwarded-allow-ips', '127.0.0.1']);
    await request(`${server.url}/pid`, { headers: { 'x-forwarded-for': '203.0.113.9' } });
    await server.waitFor(/^203\.0\.113\.9 - - .*"GET \/pid HTTP\/1\.1" 200/m);
  });

  it('tsgunicorn’s keepalive wins over the value the script sets after listen()', async () => {
    const { server } = await startScript('plain.mjs', ['-w', '1', '--keep-alive', '3']);
    expect(JSON.parse((await request(`${server.url}/server`)).body)).toMatchObject({ keepAliveTimeout: 3000 });
  });

  it('header_timeout holds on the script’s server, which listened before tsgunicorn set it: stalled headers get 408 in seconds', async () => {
    const { server } = await startScript('plain.mjs', ['-w', '1', '--header-timeout', '1']);
    const socket = net.connect(server.port, '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8').on('data', (d: string) => (received += d));
    const closed = new Promise((resolve, reject) => socket.once('close', resolve).once('error', reject));
    socket.write('GET /pid HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    // Node sweeps for timed-out headers every 30 s unless told otherwise: well
    // before that, as an exported app's connection is.
    const cut = await Promise.race([closed.then(() => true), sleep(15000).then(() => false)]);
    socket.destroy();
    expect(cut).toBe(true);
    expect(received).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
  });

  it('an error thrown in the script’s request listener is logged and answered 500', async () => {
    const { server } = await startScript('plain.mjs', ['-w', '1']);
    expect((await request(`${server.url}/throw`)).status).toBe(500);
    await server.waitFor(/Error handling request GET \/throw/);
    expect(server.output()).toMatch(/boom from \/throw/);
  });

  it('a timeout kill names the hung request', async () => {
    const { server } = await startScript('plain.mjs', ['-w', '2', '-t', '2']);
    void request(`${server.url}/busy?ms=60000`).catch(() => {});
    expect(await server.waitFor(/WORKER TIMEOUT/, 10000)).toMatch(/WORKER TIMEOUT \(pid:\d+\): GET \/busy\?ms=60000 in flight for/);
  });

  it('max_requests replaces a worker after its requests', async () => {
    const { server } = await startScript('plain.mjs', ['-w', '1', '--max-requests', '3']);
    const first = (await request(`${server.url}/pid`)).body;
    await request(server.url);
    await request(server.url);
    await until('a new worker serves', async () => ((await request(`${server.url}/pid`)).body !== first ? true : undefined));
    expect(server.output()).toMatch(/reached max_requests/);
  });

  it('HUP under load: 0 failed requests, and the in-flight request finishes', async () => {
    const { server } = await startScript('plain.mjs', ['-w', '2']);
    const before = await workerPids(server.proc.pid!);
    const slow = request(`${server.url}/slow?ms=1500`);
    const loadRun = load({ url: `${server.url}/pid`, clients: 8, durationMs: 4000, keepAlive: true });
    await new Promise((r) => setTimeout(r, 500));
    server.signal('SIGHUP');
    await server.waitFor(/Reloaded/);
    expect(await slow).toMatchObject({ status: 200, body: 'slept 1500' });
    const result = await loadRun;
    expect(result.failed, result.errors.slice(0, 5).join(', ')).toBe(0);
    expect(before).not.toContain(Number((await request(`${server.url}/pid`)).body));
  });

  it('a graceful stop finishes in-flight requests even when the app exits on SIGTERM itself', async () => {
    const { server } = await startScript('sigterm-exits.mjs', ['-w', '1']);
    const inFlight = request(`${server.url}/?ms=1500`);
    await new Promise((r) => setTimeout(r, 300));
    server.signal('SIGTERM');
    expect(await inFlight).toMatchObject({ status: 200, body: 'finished' });
    expect(await server.exited()).toBe(0);
  });

  it('WebSocket upgrades reach the listeners the script attached to its server', async () => {
    const { server } = await startScript('websocket.mjs', ['-w', '2']);
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send('hi');
    const reply = await new Promise<string>((resolve) => ws.once('message', (data: Buffer) => resolve(data.toString())));
    expect(reply).toMatch(/^echo hi from \d+$/);
    ws.close();
  });

  it('the script’s own TLS (https.createServer) is served, and the health check speaks TLS to it', async () => {
    const { certfile: cert, keyfile: key } = selfSigned(tmp(), 'own');
    const metricsPort = await freePort();
    const { server } = await startScript('own-tls.mjs', ['-w', '1', ...healthCheckArgs(metricsPort, '/')], {
      TLS_CERT: cert,
      TLS_KEY: key,
    });
    const { body } = await request(`https://127.0.0.1:${server.port}/`, { rejectUnauthorized: false });
    expect(body).toBe('tls true');
    // Probes in plain HTTP would fail: the health check reads healthy only over TLS.
    await healthCheckPassed(metricsPort);
  });

  it('certfile with a server script is refused at boot with what to do', async () => {
    // A usable pair: a missing one is refused earlier, as a bad setting.
    const { certfile: cert, keyfile: key } = selfSigned(scratch(), 'script');
    const result = await runCli(['-b', '127.0.0.1:0', '-w', '1', '--certfile', cert, '--keyfile', key, script('plain.cjs')], {
      env: { SCRIPT_PORT: String(await freePort()) },
    });
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(/plain\.cjs creates its own http server, and certfile\/keyfile apply only to exported apps/);
  });
});
