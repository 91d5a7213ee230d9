// The core server, as a user runs it: the real CLI in a child process, real HTTP.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { load, rawExchange, request } from '../helpers/http.js';
import { FIXTURES, HELLO_APP, runCli, serversStoppedAfterEach, startServer, workerPids } from '../helpers/tsgunicorn.js';

const start = serversStoppedAfterEach();
const fixture = (name: string) => path.join(FIXTURES, name);

describe('serving', () => {
  it('serves the example app on both routes with 3 workers, each accepting connections', async () => {
    const server = await start(['-w', '3', HELLO_APP]);
    expect(await request(`${server.url}/`)).toMatchObject({ status: 200, body: 'Hello, tsgunicorn!' });
    expect(await request(`${server.url}/health`)).toMatchObject({ status: 200, body: 'OK' });

    const pidServer = await start(['-w', '3', fixture('pid-app.mjs')]);
    const seen = new Set<string>();
    for (let i = 0; i < 300 && seen.size < 3; i++) seen.add((await request(`${pidServer.url}/pid`)).body);
    expect(seen.size).toBe(3);
    const workers = await workerPids(pidServer.proc.pid!);
    expect([...seen].map(Number).sort()).toEqual(workers.sort());
  });

  it('names its processes: master and worker titles', async () => {
    const server = await start(['-w', '1', '-n', 'titled', fixture('pid-app.mjs')]);
    const master = readFileSync(`/proc/${server.proc.pid}/cmdline`, 'utf8');
    expect(master).toContain('tsgunicorn: master [titled]');
    const [worker] = await workerPids(server.proc.pid!);
    expect(readFileSync(`/proc/${worker}/cmdline`, 'utf8')).toContain('tsgunicorn: worker [titled]');
  });

  it('loads a TypeScript app with type annotations, and a factory with arguments', async () => {
    const server = await start(['-w', '1', fixture('typed-app.ts')]);
    expect((await request(server.url)).body).toBe('typed x2');
    const factory = await start(['-w', '1', `${fixture('typed-app.ts')}:create("made", 3)`]);
    expect((await request(factory.url)).body).toBe('made:3');
  });

  it('serves a bare fetch handler (default export)', async () => {
    const server = await start(['-w', '1', fixture('fetch-fn-app.mjs')]);
    expect((await request(`${server.url}/some/path`)).body).toBe('fetch /some/path');
  });
});

describe('frameworks, unmodified', () => {
  const big = Buffer.alloc(3 * 1024 * 1024, 'x');
  const streamed = async (url: string) => {
    // The body must arrive in several chunks spread over time, not at once.
    const res = await fetch(url);
    const reader = res.body!.getReader();
    const arrivals: number[] = [];
    let text = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      arrivals.push(Date.now());
      text += Buffer.from(value).toString();
    }
    return { text, spanMs: arrivals.at(-1)! - arrivals[0]!, chunks: arrivals.length };
  };

  for (const [name, file, root] of [
    ['Express', 'express-app.mjs', 'express root'],
    ['Koa', 'koa-app.mjs', 'koa root'],
    ['Hono (fetch)', 'hono-app.mjs', 'hono root'],
  ] as const) {
    it(`${name}: routes, a streamed 3 MB request body and a streamed response`, async () => {
      const server = await start(['-w', '2', fixture(file)]);
      expect((await request(`${server.url}/`)).body).toBe(root);
      const upload = await request(`${server.url}/upload`, {
        method: 'POST',
        body: big,
        headers: { 'content-type': 'application/octet-stream' },
      });
      expect(JSON.parse(upload.body)).toEqual({ bytes: big.length });
      const { text, spanMs, chunks } = await streamed(`${server.url}/stream`);
      expect(text).toBe([0, 1, 2, 3, 4].map((i) => `chunk ${i}\n`).join(''));
      expect(chunks).toBeGreaterThan(1);
      // The server spends ~400 ms writing; the first part arrives long before the last.
      expect(spanMs).toBeGreaterThanOrEqual(150);
    });
  }

  it('a node listener streams the request body back as it arrives (chunked both ways)', async () => {
    const server = await start(['-w', '1', fixture('pid-app.mjs')]);
    const body = new ReadableStream({
      async start(controller) {
        for (let i = 0; i < 3; i++) {
          controller.enqueue(new TextEncoder().encode(`part${i};`));
          await new Promise((r) => setTimeout(r, 20));
        }
        controller.close();
      },
    });
    const res = await fetch(`${server.url}/echo`, { method: 'POST', body, duplex: 'half' } as RequestInit);
    expect(await res.text()).toBe('part0;part1;part2;');
  });

  it('passes WebSocket upgrades to the exported upgrade handler (ws echo)', async () => {
    const server = await start(['-w', '2', fixture('ws-app.mjs')]);
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const replies: string[] = [];
    const done = new Promise<void>((resolve) =>
      ws.on('message', (data) => {
        replies.push(Buffer.isBuffer(data) ? data.toString('utf8') : 'not a single buffer');
        if (replies.length === 2) resolve();
      }),
    );
    ws.send('one');
    ws.send('two');
    await done;
    ws.close();
    expect(replies).toEqual(['echo one', 'echo two']);
    expect((await request(server.url)).body).toBe('plain http');
  });
});

describe('settings', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-config-'));

  it('combines ini file < env < CLI, and --print-config names each source', async () => {
    const ini = path.join(dir, 'app.ini');
    writeFileSync(ini, `; comment\nworkers = 2\ntimeout = 11\nkeepalive = 7\nmax_requests = 100\n`);
    const { code, stdout } = await runCli(['-c', ini, '--print-config', '--timeout', '13', 'app.ts'], {
      env: { TSGUNICORN_TIMEOUT: '12', TSGUNICORN_KEEPALIVE: '8' },
    });
    expect(code).toBe(0);
    const line = (name: string) => stdout.split('\n').find((l) => l.startsWith(`${name} =`))!;
    expect(line('workers')).toMatch(new RegExp(`^workers = 2\\s+; ${ini}:2$`));
    expect(line('keepalive')).toMatch(/^keepalive = 8\s+; environment TSGUNICORN_KEEPALIVE$/);
    expect(line('timeout')).toMatch(/^timeout = 13\s+; command line --timeout$/);
    expect(line('max_requests')).toMatch(new RegExp(`^max_requests = 100\\s+; ${ini}:5$`));
    expect(line('graceful_timeout')).toMatch(/^graceful_timeout = 30\s+; default$/);
    expect(line('app')).toMatch(/^app = app.ts\s+; command line --app$/);
  });

  it('a config file drives a real server (bind, workers, raw_env)', async () => {
    const ini = path.join(dir, 'serve.ini');
    writeFileSync(ini, `bind = 127.0.0.1:0\nworkers = 2\nraw_env = GREETING=hi there\napp = ${fixture('pid-app.mjs')}\n`);
    const server = await start(['-c', ini]);
    expect((await request(`${server.url}/env?name=GREETING`)).body).toBe('hi there');
    expect(await workerPids(server.proc.pid!)).toHaveLength(2);
  });

  const bad: Array<[string, string, RegExp]> = [
    ['unknown key with a suggestion', 'wrokers = 2\n', /bad\.ini:1: unknown setting "wrokers" \(did you mean "workers"\?\)/],
    [
      'a bad value',
      'bind = 127.0.0.1:8000\nworkers = many\n',
      /bad\.ini:2: workers: expected an integer from 1 to 1024, or auto, got "many"/,
    ],
    ['a wrong type', 'timeout = soon\n', /bad\.ini:1: timeout: expected a number of seconds from 0 to 2147483, got "soon"/],
    ['a bad address', 'bind = 127.0.0.1:99999\n', /bad\.ini:1: bind: expected HOST:PORT, \[IPV6\]:PORT, unix:PATH or fd:\/\/N/],
    ['a section', '[server]\nworkers = 2\n', /bad\.ini:1: section \[server\] is not used/],
    ['a choice', 'loglevel = loud\n', /bad\.ini:1: loglevel: expected one of debug, info, warning, error, critical/],
  ];
  for (const [what, content, message] of bad) {
    it(`config file with ${what}: one clear message, exit 2, nothing started`, async () => {
      const ini = path.join(dir, 'bad.ini');
      writeFileSync(ini, content);
      const { code, stderr } = await runCli(['-c', ini, fixture('pid-app.mjs')]);
      expect(code).toBe(2);
      expect(stderr).toMatch(message);
      expect(stderr.trim().split('\n')).toHaveLength(1);
      expect(stderr).not.toMatch(/Booting worker/);
    });
  }

  it('bad env and CLI values, a missing config file and no app: exit 2 with the place named', async () => {
    expect(await runCli(['-w', '0', 'x.ts'])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/option --workers: workers: expected an integer from 1 to 1024, or auto, got "0"/),
    });
    expect(await runCli(['x.ts'], { env: { TSGUNICORN_WROKERS: '2' } })).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/environment TSGUNICORN_WROKERS: unknown setting \(did you mean "TSGUNICORN_WORKERS"\?\)/),
    });
    expect(await runCli(['x.ts'], { env: { TSGUNICORN_MAX_REQUESTS: '-1' } })).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/environment TSGUNICORN_MAX_REQUESTS: max_requests/),
    });
    expect(await runCli(['-c', path.join(dir, 'missing.ini'), 'x.ts'])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/missing\.ini: cannot read it \(no such file\)/),
    });
    expect(await runCli([])).toMatchObject({ code: 2, stderr: expect.stringMatching(/no app to serve/) });
    expect(await runCli(['--certfile', '/x.pem', 'x.ts'])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/certfile is set but keyfile is not/),
    });
  });

  it('--check-config imports the app: 0 when it loads, 4 when it does not', async () => {
    expect(await runCli(['--check-config', fixture('hono-app.mjs')])).toMatchObject({
      code: 0,
      stdout: expect.stringMatching(/loads as a fetch app/),
    });
    const broken = await runCli(['--check-config', fixture('import-error.mjs')]);
    expect(broken.code).toBe(4);
    expect(broken.stderr).toMatch(/does-not-exist\.mjs/);
  });

  it('--help lists every setting, --version prints the version', async () => {
    const { stdout } = await runCli(['--help']);
    const { schema } = await import('../../src/settings/schema.js');
    for (const [name, spec] of Object.entries(schema)) {
      expect(stdout, name).toContain(/--[\w-]+/.exec(spec.flags)![0]);
      expect(stdout, name).toContain(`(${name})`);
    }
    const pkg = JSON.parse(readFileSync(path.join(FIXTURES, '../../package.json'), 'utf8')) as { version: string };
    expect((await runCli(['--version'])).stdout.trim()).toBe(pkg.version);
  });
});

describe('failures', () => {
  it('SIGKILL of a worker: a replacement serves within 1 s and no request to the other workers fails', async () => {
    const server = await start(['-w', '3', fixture('pid-app.mjs')]);
    const before = await workerPids(server.proc.pid!);
    const loadRun = load({ url: `${server.url}/pid`, clients: 4, durationMs: 3000, keepAlive: false });
    await new Promise((r) => setTimeout(r, 500));
    const killedAt = Date.now();
    process.kill(before[0]!, 'SIGKILL');
    // A replacement counts once it answers a request itself.
    let replacement: number | undefined;
    while (!replacement && Date.now() - killedAt < 5000) {
      const pid = Number((await request(`${server.url}/pid`)).body);
      if (!before.includes(pid)) replacement = pid;
    }
    const elapsed = Date.now() - killedAt;
    const result = await loadRun;
    expect(replacement).toBeDefined();
    expect(elapsed).toBeLessThan(1000);
    // Only a request the killed worker had already accepted may fail: one per
    // client at most, each sent before the kill.
    expect(result.failed).toBeLessThanOrEqual(4);
    for (const sentAt of result.failedAt) expect(sentAt).toBeLessThanOrEqual(killedAt + 20);
    expect(result.ok).toBeGreaterThan(50);
  });

  it('an import error exits 4 with the error shown once, without looping', async () => {
    const server = await startServer(['-w', '2', fixture('import-error.mjs')], { waitReady: false });
    expect(await server.exited()).toBe(4);
    expect(server.output()).toMatch(/does-not-exist\.mjs/);
    expect(server.output().match(/Failed to load the app/g)).toHaveLength(1);
  });

  it('a worker dying at boot exits 3, without looping', async () => {
    const server = await startServer(['-w', '2', '--hooks', fixture('crash-after-load.mjs'), fixture('pid-app.mjs')], { waitReady: false });
    expect(await server.exited()).toBe(3);
    expect(server.output().match(/Booting worker/g)!.length).toBe(2);
    expect(server.output()).toMatch(/failed to boot \(exit code 7\)/);
  });

  it('an app that exits while being imported failed to load: exit 4, and the log says so', async () => {
    const server = await startServer(['-w', '2', fixture('crash-at-boot.mjs')], { waitReady: false });
    expect(await server.exited()).toBe(4);
    expect(server.output()).toMatch(/Failed to load the app: the worker \(pid:\d+\) exited while importing it/);
    expect(server.output().match(/Booting worker/g)!.length).toBe(2);
  });

  it('a port in use names the address and how to find its owner, exit 1', async () => {
    const server = await start(['-w', '1', fixture('pid-app.mjs')]);
    const { code, stderr } = await runCli(['-b', `127.0.0.1:${server.port}`, fixture('pid-app.mjs')]);
    expect(code).toBe(1);
    expect(stderr).toMatch(
      new RegExp(`Connection in use: 127\\.0\\.0\\.1:${server.port}.*ss -ltnp 'sport = :${server.port}'.*lsof -i :${server.port}`),
    );
  });
});

describe('access log', () => {
  it("matches Gunicorn's default format atom by atom", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-access-'));
    const log = path.join(dir, 'access.log');
    const server = await start(['-w', '1', '--access-logfile', log, fixture('pid-app.mjs')]);
    await request(`${server.url}/headers?x=1`, { headers: { 'user-agent': 'tester/1.0', referer: 'http://ref.example/' } });
    await server.stop();
    const line = readFileSync(log, 'utf8').trim();
    // h l u t "r" s b "f" "a"
    const m = /^(\S+) (-) (-) \[(\d{2}\/\w{3}\/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] "([^"]*)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)"$/.exec(
      line,
    );
    expect(m, line).not.toBeNull();
    expect(m![1]).toBe('127.0.0.1');
    expect(m![5]).toBe('GET /headers?x=1 HTTP/1.1');
    expect(m![6]).toBe('200');
    expect(Number(m![7])).toBeGreaterThan(0);
    expect(m![8]).toBe('http://ref.example/');
    expect(m![9]).toBe('tester/1.0');
  });

  it('client bytes cannot start a new log line', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-access-'));
    const log = path.join(dir, 'access.log');
    const server = await start(['-w', '1', '--access-logfile', log, fixture('pid-app.mjs')]);
    // The parser refuses raw CR, LF and other C0 controls in headers (checked
    // below); what can arrive are obs-text bytes, among them C1 controls such as
    // NEL (0x85) and CSI (0x9b), which some consoles and log tools treat as line
    // breaks or escape sequences. They must come out escaped.
    const forged = 'x\x85\x9b[31m 127.0.0.1 - - [01/Jan/2000:00:00:00 +0000] "GET /forged HTTP/1.1" 200 1 "-" "-"';
    const reply = await rawExchange(
      server.port,
      Buffer.from(`GET /pid HTTP/1.1\r\nHost: x\r\nUser-Agent: ${forged}\r\nConnection: close\r\n\r\n`, 'latin1'),
    );
    expect(reply).toMatch(/^HTTP\/1\.1 200/);
    const smuggled = await rawExchange(server.port, 'GET /pid HTTP/1.1\r\nHost: x\r\nUser-Agent: a\nb\r\nConnection: close\r\n\r\n');
    expect(smuggled).toMatch(/^HTTP\/1\.1 400/);
    await server.stop();
    const lines = readFileSync(log, 'utf8').split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toMatch(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/);
    expect(lines[0]).toContain(
      '"x\\x85\\x9b[31m 127.0.0.1 - - [01/Jan/2000:00:00:00 +0000] \\"GET /forged HTTP/1.1\\" 200 1 \\"-\\" \\"-\\""',
    );
  });
});

describe("parser strictness: the requests of Gunicorn's fixtures that Gunicorn refuses", () => {
  // Each on a connection of its own, then a valid request on the same worker: refusing never stops the serving.
  const field = (total: number) => `X-Long: ${'v'.repeat(total - 'X-Long: '.length - 2)}\r\n`;
  const refused: Array<[string, number, string]> = [
    // limit_request_field_size counts the field's line with its CRLF, as Gunicorn does.
    // Gunicorn's limit_header_default_01: `X: ` and 8,187 bytes, a line of 8,192 bytes with its CRLF.
    ['a header field line of 8,192 bytes (limit 8,190)', 431, `GET / HTTP/1.0\r\nX: ${'y'.repeat(8187)}\r\n\r\n`],
    ['a header field of 8,191 bytes (limit 8,190)', 431, `GET /pid HTTP/1.1\r\nHost: x\r\n${field(8191)}\r\n`],
    [
      'two Content-Type fields',
      400,
      'POST /body HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}',
    ],
    [
      'Host in the trailers of a chunked body',
      400,
      'POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nHost: evil.example\r\n\r\n',
    ],
    [
      'Content-Length in the trailers of a chunked body',
      400,
      'POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nContent-Length: 3\r\n\r\n',
    ],
    ['GET * (the asterisk form is for OPTIONS only)', 400, 'GET * HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['HTTP/1.1 without Host', 400, 'GET /pid HTTP/1.1\r\n\r\n'],
  ];
  it.each(refused)('%s: %i, and the worker serves on', async (_, status, payload) => {
    const server = await start(['-w', '1', fixture('reliability/app.mjs')]);
    expect(await rawExchange(server.port, payload)).toMatch(
      new RegExp(`^HTTP/1\\.1 ${status} [^\\r]*\\r\\n(?:[^\\r]+\\r\\n)*connection: close\\r\\n`, 'i'),
    );
    expect(await request(`${server.url}/`)).toMatchObject({ status: 200, body: 'ok' });
  });
  it('still accepted: a field of exactly 8,190 bytes, allowed trailers, OPTIONS *', async () => {
    const server = await start(['-w', '1', fixture('reliability/app.mjs')]);
    expect(await rawExchange(server.port, `GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${field(8190)}\r\n`)).toMatch(
      /^HTTP\/1\.1 200 /,
    );
    const trailer =
      'POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\nX-Checksum: 1\r\n\r\n';
    expect(await rawExchange(server.port, trailer)).toMatch(/^HTTP\/1\.1 200 [\s\S]*\{"bytes":3\}/);
    expect(await rawExchange(server.port, 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 200 /);
  });
});

describe('limits', () => {
  it('a 10 kB request line gets 414, 200 headers get 431, an 9 kB header gets 431, and the next request succeeds', async () => {
    const server = await start(['-w', '1', fixture('pid-app.mjs')]);
    const longLine = await rawExchange(server.port, `GET /${'a'.repeat(10_000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(longLine).toMatch(/^HTTP\/1\.1 414 /);
    const headers = Array.from({ length: 200 }, (_, i) => `X-H${i}: v\r\n`).join('');
    expect(await rawExchange(server.port, `GET /pid HTTP/1.1\r\nHost: x\r\n${headers}\r\n`)).toMatch(/^HTTP\/1\.1 431 /);
    expect(await rawExchange(server.port, `GET /pid HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(9000)}\r\n\r\n`)).toMatch(/^HTTP\/1\.1 431/);
    expect(await request(`${server.url}/`)).toMatchObject({ status: 200, body: 'ok' });
  });
});
