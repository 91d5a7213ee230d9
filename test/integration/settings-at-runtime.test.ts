// Valid settings that Node's server would once refuse (a request_timeout below
// header_timeout, durations that are not whole milliseconds) serve, at start and
// after a reload; a reload to a certificate that does not fit its key is refused
// in one line while the running workers keep serving; a host name binds.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { request } from '../helpers/http.js';
import { scratch } from '../helpers/operator.js';
import { selfSigned } from '../helpers/tls.js';
import { freePort } from '../helpers/ports.js';
import { FIXTURES, serversStoppedAfterEach } from '../helpers/tsgunicorn.js';
import { exchange } from '../fixtures/reliability/raw-client.js';
import { requestInFlight } from '../helpers/in-flight.js';

const start = serversStoppedAfterEach();
const APP = path.join(FIXTURES, 'reliability/app.mjs');

describe('timeouts', () => {
  it('a request_timeout below header_timeout serves, and bounds the headers too: the shorter applies', async () => {
    const server = await start(['-w', '1', '--request-timeout', '1', '--header-timeout', '60', APP]);
    expect((await request(`${server.url}/pid`)).status).toBe(200);
    // Headers that never end: cut by request_timeout (1 s), long before header_timeout (60 s).
    const slow = await exchange(server.port, 'GET /pid HTTP/1.1\r\nHost: x\r\n', { deadlineMs: 30000 });
    expect(slow.closed).toBe(true);
    expect(slow.statuses).toEqual([408]);
    expect(server.output()).not.toMatch(/ERR_OUT_OF_RANGE|Unhandled promise rejection|failed to boot/);
  });

  it('durations that are not whole milliseconds serve', async () => {
    const server = await start([
      '-w',
      '1',
      '--keep-alive',
      '0.5005',
      '--header-timeout',
      '1.0001',
      '--request-timeout',
      '2.25',
      '--graceful-timeout',
      '0.7505',
      '-t',
      '30.0001',
      APP,
    ]);
    expect((await request(`${server.url}/pid`)).status).toBe(200);
    expect(server.output()).not.toMatch(/ERR_OUT_OF_RANGE|Unhandled promise rejection|failed to boot/);
  });

  it('the longest graceful_timeout (2147483 s) lets a stop finish the request in flight', async () => {
    // The master's backstop after graceful_timeout (+ 2 s) would overflow a timer and kill at once.
    const sock = path.join(scratch(), 'control.sock');
    const server = await start(['-w', '1', '--graceful-timeout', '2147483', '--keep-alive', '2147483', '--control-socket', sock, APP]);
    const slow = request(`${server.url}/slowpid?ms=3000`);
    // In flight before TERM: a request still in the backlog when the worker stops accepting would not be.
    await requestInFlight(sock);
    server.signal('SIGTERM');
    expect((await slow).status).toBe(200);
    expect(await server.exited()).toBe(0);
    expect(server.output()).not.toMatch(/TimeoutOverflowWarning|was sent SIGKILL/);
  });

  it('a HUP to such values reloads and serves', async () => {
    const ini = path.join(scratch(), 'app.ini');
    writeFileSync(ini, `bind = 127.0.0.1:${await freePort()}\nworkers = 1\n`);
    const server = await start(['-c', ini, APP]);
    writeFileSync(ini, `bind = 127.0.0.1:${server.port}\nworkers = 1\nrequest_timeout = 5\nheader_timeout = 20\nkeepalive = 0.0005\n`);
    server.signal('SIGHUP');
    await server.waitFor(/Reloaded: 1 new worker/);
    expect((await request(`${server.url}/pid`)).status).toBe(200);
    expect(server.output()).not.toMatch(/ERR_OUT_OF_RANGE|Unhandled promise rejection|failed/);
  });
});

describe('a reload to a bad certificate', () => {
  it('is refused in one line naming certfile and keyfile; the running workers keep serving', async () => {
    const dir = scratch();
    const a = selfSigned(dir, 'a');
    const b = selfSigned(dir, 'b');
    const ini = path.join(dir, 'app.ini');
    writeFileSync(ini, `bind = 127.0.0.1:${await freePort()}\nworkers = 1\n`);
    const server = await start(['-c', ini, APP]);
    const pid = (await request(`${server.url}/pid`)).body;
    writeFileSync(ini, `bind = 127.0.0.1:${server.port}\nworkers = 1\ncertfile = ${a.certfile}\nkeyfile = ${b.keyfile}\n`);
    server.signal('SIGHUP');
    const line = await server.waitFor(/Reload failed/);
    expect(line).toMatch(
      new RegExp(
        `\\[ERROR\\] Reload failed: bad config: ${ini}:3: certfile ${a.certfile} and keyfile ${b.keyfile}: not a usable pair.*; generation 1 keeps serving`,
      ),
    );
    const after = server.output().slice(server.output().indexOf('Handling signal: hup'));
    expect(after.trim().split('\n')).toHaveLength(2);
    expect(after).not.toMatch(/Booting worker|failed to boot/);
    expect(await request(`${server.url}/pid`)).toMatchObject({ status: 200, body: pid });
  });
});

describe('bind', () => {
  it('-b localhost:PORT listens on what localhost resolves to', async () => {
    const port = await freePort();
    const server = await start(['-w', '1', '-b', `localhost:${port}`, APP]);
    expect(server.output()).toMatch(new RegExp(`Listening at: http://127\\.0\\.0\\.1:${port} `));
    expect((await request(`http://127.0.0.1:${port}/pid`)).status).toBe(200);
  });
});
