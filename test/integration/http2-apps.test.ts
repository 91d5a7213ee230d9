// Exported apps over HTTP/2: h2 over TLS beside HTTP/1.1 (ALPN), and cleartext
// h2c with prior knowledge from trusted proxies beside HTTP/1.1 on one socket,
// with one policy for both protocols.
import http2 from 'node:http2';
import https from 'node:https';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { rawExchange, request } from '../helpers/http.js';
import {
  CLIENT_PREFACE,
  h2load,
  h2request,
  pseudoFields,
  rawH2Exchange,
  rawH2Get,
  goawayOf,
  stalledBodyReset,
  withSession,
} from '../helpers/http2.js';
import { v1 } from '../helpers/proxy-protocol.js';
import { healthCheckArgs, healthCheckPassed, metricSum, scrapeMetrics } from '../helpers/metrics.js';
import { freePort } from '../helpers/ports.js';
import { selfSigned } from '../helpers/tls.js';
import { FIXTURES, runCli, serversStoppedAfterEach, workerPids } from '../helpers/tsgunicorn.js';
import { sleep, until } from '../helpers/wait.js';

const start = serversStoppedAfterEach();
const NODE_APP = path.join(FIXTURES, 'protocol-app.mjs');
const FETCH_APP = path.join(FIXTURES, 'protocol-fetch-app.mjs');
const H2C = ['--http2-cleartext', 'prior-knowledge'];

interface Seen {
  pid: number;
  httpVersion: string;
  url: string;
  encrypted: boolean;
}

/** An app (NODE_APP unless named) over TLS with these http_protocols, logging access to stdout. */
async function startTls(protocols: string, app = NODE_APP) {
  const tlsPair = selfSigned();
  const args = ['--certfile', tlsPair.certfile, '--keyfile', tlsPair.keyfile, '--http-protocols', protocols];
  return { tlsPair, server: await start(['-w', '1', ...args, '--access-logfile', '-', app]) };
}

describe('h2 over TLS (http_protocols)', () => {
  it('h2,h1: an HTTP/2 client gets HTTP/2 through ALPN, an HTTP/1.1 client HTTP/1.1, on the same socket', async () => {
    const { tlsPair, server } = await startTls('h2,h1');
    const origin = `https://127.0.0.1:${server.port}`;
    const h2 = await h2request(`${origin}/over-h2`, { ca: tlsPair.cert });
    expect(JSON.parse(h2.body)).toMatchObject({ httpVersion: '2.0', url: '/over-h2', encrypted: true });
    const h1 = await request(`${origin}/over-h1`, {
      ca: tlsPair.cert,
      agent: new https.Agent({ ca: tlsPair.cert, ALPNProtocols: ['http/1.1'] }),
    });
    expect(JSON.parse(h1.body)).toMatchObject({ httpVersion: '1.1', url: '/over-h1', encrypted: true });
    await server.waitFor(/"GET \/over-h2 HTTP\/2\.0" 200 /);
    await server.waitFor(/"GET \/over-h1 HTTP\/1\.1" 200 /);
  });

  it('the scheme comes from the transport: a client’s :scheme http over TLS is not believed', async () => {
    const { tlsPair, server } = await startTls('h2', FETCH_APP);
    const origin = `https://127.0.0.1:${server.port}`;
    const claimed = await h2request(`${origin}/s`, { ca: tlsPair.cert, headers: { ':scheme': 'http' } });
    expect(JSON.parse(claimed.body)).toMatchObject({ url: `${origin}/s` });
  });

  it('h2 alone: HTTP/1.1 clients are not served', async () => {
    const { tlsPair, server } = await startTls('h2');
    const origin = `https://127.0.0.1:${server.port}`;
    expect(JSON.parse((await h2request(origin, { ca: tlsPair.cert })).body)).toMatchObject({ httpVersion: '2.0' });
    await expect(request(origin, { agent: new https.Agent({ ca: tlsPair.cert, ALPNProtocols: ['http/1.1'] }) })).rejects.toThrow();
  });
});

describe('HTTP/2 settings', () => {
  it('the http2_* limits are the SETTINGS every session opens with', async () => {
    const server = await start([
      '-w',
      '1',
      ...H2C,
      '--http2-max-concurrent-streams',
      '7',
      '--http2-initial-window-size',
      '100000',
      '--http2-max-frame-size',
      '32768',
      '--http2-max-header-list-size',
      '20000',
      NODE_APP,
    ]);
    const remote = await withSession(
      server.url,
      (session) => new Promise<http2.Settings>((resolve) => session.once('remoteSettings', resolve)),
    );
    expect(remote).toMatchObject({ maxConcurrentStreams: 7, initialWindowSize: 100000, maxFrameSize: 32768, maxHeaderListSize: 20000 });
  });

  it.each([
    [['--http2-max-frame-size', '100'], /http2_max_frame_size: expected an integer from 16384 to 16777215, got "100"/],
    [['--http2-max-concurrent-streams', '0'], /http2_max_concurrent_streams: expected an integer from 1/],
    [['--http-protocols', 'h3'], /http_protocols: expected one of h1, h2, got "h3"/],
    [['--http2-cleartext', 'yes'], /http2_cleartext: expected one of off, prior-knowledge, upgrade, both, got "yes"/],
    [['--http-protocols', 'h2'], /http_protocols includes h2 but certfile is not set/],
  ])('%s is refused with one line and exit 2', async (args, message) => {
    const run = await runCli([...args, NODE_APP]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
  });

  it('h2 alone with a health check is refused: the check speaks HTTP/1.1', async () => {
    const tlsPair = selfSigned();
    const run = await runCli([
      '--certfile',
      tlsPair.certfile,
      '--keyfile',
      tlsPair.keyfile,
      '--http-protocols',
      'h2',
      '--health-check-path',
      '/health',
      NODE_APP,
    ]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/health check \(health_check_path\) speaks HTTP\/1\.1: set http_protocols = h2,h1/);
  });
});

describe('h2c with prior knowledge (http2_cleartext)', () => {
  it('serves HTTP/2 and HTTP/1.1 on the same socket, node and fetch apps, from 2 workers', async () => {
    const server = await start(['-w', '2', ...H2C, '--access-logfile', '-', NODE_APP]);
    const pids = new Set<number>();
    await until('2 workers answering over h2c', async () => {
      const seen = JSON.parse((await h2request(`${server.url}/h2c`)).body) as Seen;
      expect(seen).toMatchObject({ httpVersion: '2.0', url: '/h2c', encrypted: false });
      pids.add(seen.pid);
      return pids.size === 2;
    });
    expect([...pids].sort()).toEqual((await workerPids(server.proc.pid!)).sort());
    expect(JSON.parse((await request(`${server.url}/h1`)).body)).toMatchObject({ httpVersion: '1.1', url: '/h1' });
    await server.waitFor(/^127\.0\.0\.1 - - \[.*\] "GET \/h2c HTTP\/2\.0" 200 \d+ "-" "-"$/m);
    await server.waitFor(/"GET \/h1 HTTP\/1\.1" 200 /);
    await server.stop();

    const fetchServer = await start(['-w', '1', ...H2C, FETCH_APP]);
    const posted = await h2request(`${fetchServer.url}/f?q=1`, { headers: { ':method': 'POST' }, body: 'payload' });
    expect(JSON.parse(posted.body)).toMatchObject({ url: `http://127.0.0.1:${fetchServer.port}/f?q=1`, method: 'POST', body: 'payload' });
  });

  it.each([
    ['koa-app.mjs', 'koa root'],
    ['hono-app.mjs', 'hono root'],
  ])('a framework that takes Node’s HTTP/2 compatibility objects: %s', async (app, body) => {
    const server = await start(['-w', '1', ...H2C, path.join(FIXTURES, app)]);
    expect(await h2request(`${server.url}/`)).toMatchObject({ status: 200, body });
  });

  it('the scheme comes from the transport: a client’s :scheme https over cleartext is not believed, a trusted X-Forwarded-Proto is', async () => {
    const server = await start(['-w', '1', ...H2C, FETCH_APP]);
    await withSession(server.url, async (session) => {
      const claimed = await h2request(`${server.url}/s`, { session, headers: { ':scheme': 'https' } });
      expect(JSON.parse(claimed.body)).toMatchObject({ url: `http://127.0.0.1:${server.port}/s` });
      const forwarded = await h2request(`${server.url}/s`, { session, headers: { 'x-forwarded-proto': 'https' } });
      expect(JSON.parse(forwarded.body)).toMatchObject({ url: `https://127.0.0.1:${server.port}/s` });
    });
  });

  it('a peer not in forwarded_allow_ips that opens with the preface is served HTTP/1.1 (and refused, as the preface is no HTTP/1.1 request)', async () => {
    const server = await start(['-w', '1', ...H2C, '--forwarded-allow-ips', '192.0.2.1', NODE_APP]);
    expect(await rawExchange(server.port, CLIENT_PREFACE)).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse((await request(`${server.url}/h1`)).body)).toMatchObject({ httpVersion: '1.1' });
  });

  it('after a PROXY header, trust is the proxy’s (the TCP peer), not the client’s it names', async () => {
    const fields = pseudoFields('/behind-proxy');
    const header = v1('PROXY TCP4 203.0.113.7 127.0.0.1 40000 80');
    // The proxy (127.0.0.1) is trusted: its h2c is served, for the client it names.
    const trusted = await start(['-w', '1', ...H2C, '--proxy-protocol', 'v1', '--access-logfile', '-', NODE_APP]);
    const reply = await rawH2Exchange(trusted.port, fields, undefined, header);
    expect(reply).not.toBe('reset');
    expect(JSON.parse((reply as { body: string }).body)).toMatchObject({ httpVersion: '2.0' });
    await trusted.waitFor(/^203\.0\.113\.7 - - .*"GET \/behind-proxy HTTP\/2\.0" 200/m);
    await trusted.stop();
    // Only the client is trusted: the proxy's connection stays HTTP/1.1.
    const untrusted = await start(['-w', '1', ...H2C, '--proxy-protocol', 'v1', '--forwarded-allow-ips', '203.0.113.7', NODE_APP]);
    expect(await rawExchange(untrusted.port, Buffer.concat([header, CLIENT_PREFACE]))).toMatch(/^HTTP\/1\.1 400 /);
  });

  it('one header policy: Host against :authority, a second Content-Type, limit_request_* over h2c', async () => {
    const server = await start(['-w', '1', ...H2C, '--limit-request-fields', '3', NODE_APP]);
    const base = pseudoFields();
    expect(await rawH2Get(server.port, base)).toBe(200);
    expect(await rawH2Get(server.port, [...base, ['host', 'other.example']])).toBe(400);
    expect(await rawH2Get(server.port, [...base, ['content-type', 'a'], ['content-type', 'b']])).toBe(400);
    expect(await rawH2Get(server.port, [...base, ['a', '1'], ['b', '2'], ['c', '3'], ['d', '4']])).toBe(431);
  });

  it('metrics count HTTP/2 streams and HTTP/1.1 requests in the same series; the health check passes beside h2c', async () => {
    const metricsPort = await freePort();
    const server = await start(['-w', '1', ...H2C, ...healthCheckArgs(metricsPort, '/health'), NODE_APP]);
    // The master may answer on the metrics port a moment after the workers boot.
    await until('metrics served', () =>
      scrapeMetrics(metricsPort).then(
        () => true,
        () => false,
      ),
    );
    await healthCheckPassed(metricsPort);
    // POSTs, told apart from the health probes' GETs.
    for (let i = 0; i < 3; i++) await h2request(`${server.url}/counted`, { headers: { ':method': 'POST' } });
    for (let i = 0; i < 2; i++) await request(`${server.url}/counted`, { method: 'POST' });
    await until('the 5 POSTs counted', async () => {
      const text = (await scrapeMetrics(metricsPort)).text;
      return metricSum(text, 'http_requests_total', 'method="POST"') === 5;
    });
  });

  it('the JSON access log says HTTP/2.0', async () => {
    const server = await start(['-w', '1', ...H2C, '--access-log-json', '--access-logfile', '-', NODE_APP]);
    await h2request(`${server.url}/json`);
    const line = await server.waitFor(/"path":"\/json"/);
    expect(JSON.parse(line)).toMatchObject({ method: 'GET', protocol: 'HTTP/2.0', path: '/json', status: 200 });
  });

  it('keepalive: a session with no stream open for keepalive seconds gets GOAWAY; one with a stream open longer is not cut', async () => {
    const server = await start(['-w', '1', ...H2C, '--keep-alive', '1', NODE_APP]);
    await withSession(server.url, async (session) => {
      const goaway = goawayOf(session);
      // The stream stays open 2.5 s, past keepalive: the session is busy, not idle.
      expect(await h2request(`${server.url}/slow?ms=2500`, { session })).toMatchObject({ status: 200, body: 'slow done' });
      expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    });
  });

  it('keepalive: a session whose short streams keep coming, none open at a given moment, is not idle; it goes once they stop', async () => {
    const server = await start(['-w', '1', ...H2C, '--keep-alive', '1', NODE_APP]);
    await withSession(server.url, async (session) => {
      let cut = false;
      const goaway = goawayOf(session).then((code) => ((cut = true), code));
      // Streams for 3 keepalive periods, each closed long before the next opens.
      for (let i = 0; i < 15; i++) {
        expect(await h2request(`${server.url}/short-${i}`, { session })).toMatchObject({ status: 200 });
        await sleep(200);
      }
      expect(cut).toBe(false);
      expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    });
  });

  it('keepalive 0: a session gets GOAWAY as soon as its stream is done, one the header policy refused too', async () => {
    // header_timeout far off: within the test, only the end of the stream can close the session.
    const args = ['--keep-alive', '0', '--header-timeout', '600', '--limit-request-fields', '1'];
    const server = await start(['-w', '1', ...H2C, ...args, NODE_APP]);
    for (const [headers, status] of [
      [{}, 200],
      [{ a: '1', b: '2' }, 431],
    ] as const) {
      await withSession(server.url, async (session) => {
        const goaway = goawayOf(session);
        expect(await h2request(`${server.url}/once`, { session, headers })).toMatchObject({ status });
        expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
      });
    }
  });

  it('header_timeout: a session that opens no stream in time gets GOAWAY', async () => {
    const server = await start(['-w', '1', ...H2C, '--header-timeout', '1', NODE_APP]);
    await withSession(server.url, async (session) => expect(await goawayOf(session)).toBe(http2.constants.NGHTTP2_NO_ERROR));
  });

  it('request_timeout: a stream whose body does not end in time is reset; the session goes on', async () => {
    const server = await start(['-w', '1', ...H2C, '--request-timeout', '1', FETCH_APP]);
    await withSession(server.url, async (session) => {
      expect(await stalledBodyReset(session, '/upload')).toBe(http2.constants.NGHTTP2_CANCEL);
      const posted = await h2request(`${server.url}/after`, { session, headers: { ':method': 'POST' }, body: 'whole' });
      expect(JSON.parse(posted.body)).toMatchObject({ body: 'whole' });
    });
  });
});

describe('drain', () => {
  it.each(['h2c', 'h2 over TLS'])(
    'HUP under load from 8 sessions of 8 streams (%s): every session gets GOAWAY, 0 failed streams, the new workers serve',
    async (kind) => {
      const tlsPair = kind === 'h2c' ? null : selfSigned();
      const args = tlsPair ? ['--certfile', tlsPair.certfile, '--keyfile', tlsPair.keyfile, '--http-protocols', 'h2,h1'] : H2C;
      const server = await start(['-w', '2', ...args, NODE_APP]);
      const origin = tlsPair ? `https://127.0.0.1:${server.port}` : server.url;
      const before = await workerPids(server.proc.pid!);
      const loadRun = h2load({ url: `${origin}/load`, clients: 8, streams: 8, durationMs: 8000, ...(tlsPair ? { ca: tlsPair.cert } : {}) });
      await sleep(2000);
      server.signal('SIGHUP');
      await server.waitFor(/Reloaded/);
      const result = await loadRun;
      expect(result.failed, result.errors.slice(0, 5).join(', ')).toBe(0);
      // The 8 sessions open on the old workers at the reload, at least, were told to go.
      expect(result.goaways).toBeGreaterThanOrEqual(8);
      const answered = [...result.bodies.keys()].map((b) => (JSON.parse(b) as Seen).pid);
      expect(answered.some((pid) => before.includes(pid))).toBe(true);
      expect(answered.some((pid) => !before.includes(pid))).toBe(true);
      await until('the old workers gone', async () => {
        const pids = await workerPids(server.proc.pid!);
        return pids.length === 2 && !pids.some((pid) => before.includes(pid));
      });
    },
  );
});
