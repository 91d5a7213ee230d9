// Behind a trusted proxy (X-Forwarded-* from forwarded_allow_ips, loopback by
// default): the logs and the in-flight label show the request as the client sent
// it, while a fetch app's Request URL carries the forwarded scheme and host.
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StatusReport } from '../../src/control/protocol.js';
import { request } from '../helpers/http.js';
import { FIXTURES, runCli, serversStoppedAfterEach, type Running } from '../helpers/tsgunicorn.js';
import { until } from '../helpers/wait.js';

const start = serversStoppedAfterEach();
const fixture = (name: string) => path.join(FIXTURES, 'proxy-trust', name);
const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'tsg-proxy-trust-'));
// What nginx sends with `proxy_set_header Host $host` and `X-Forwarded-Proto $scheme`.
const FORWARDED = { host: 'example.com', 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.7' };

const get = (server: Running, target: string) => request(`${server.url}${target}`, { headers: FORWARDED });

describe('a fetch app behind a trusted proxy', () => {
  it('sees the forwarded https URL; the access log, text and JSON, shows the request target as sent', async () => {
    const dir = tmp();
    const textLog = path.join(dir, 'access.log');
    const jsonLog = path.join(dir, 'access.json');
    const text = await start([
      '-w',
      '1',
      '--access-logfile',
      textLog,
      '--access-logformat',
      '%(h)s|%(r)s|%(U)s|%(q)s',
      fixture('fetch-app.mjs'),
    ]);
    const json = await start(['-w', '1', '--access-logfile', jsonLog, '--access-log-json', fixture('fetch-app.mjs')]);
    for (const server of [text, json]) expect((await get(server, '/hello?x=1')).body).toBe('https://example.com/hello?x=1');
    await Promise.all([text.stop(), json.stop()]);

    expect(readFileSync(textLog, 'utf8')).toBe('203.0.113.7|GET /hello?x=1 HTTP/1.1|/hello|x=1\n');
    const entry = JSON.parse(readFileSync(jsonLog, 'utf8')) as Record<string, unknown>;
    expect(entry).toMatchObject({ method: 'GET', path: '/hello', query: 'x=1', remote_addr: '203.0.113.7' });
  });

  it('names a request in flight by its target as sent', async () => {
    const sock = path.join(tmp(), 'control.sock');
    const server = await start(['-w', '1', '--control-socket', sock, fixture('fetch-app.mjs')]);
    await server.waitFor(/Control socket at: /);
    const status = async (): Promise<StatusReport> =>
      JSON.parse((await runCli(['status', '--socket', sock, '--json'])).stdout) as StatusReport;
    const inFlight = async (count: number) =>
      until(`${count} request(s) in flight`, async () => ((await status()).workers[0]!.inFlight === count ? true : undefined));

    // The first request is labelled as it arrives; the second only once the first is done.
    const first = get(server, '/hold?id=a');
    await inFlight(1);
    const second = get(server, '/hold?id=b');
    await inFlight(2);
    await get(server, '/release?id=a');
    await first;
    await inFlight(1);
    expect((await status()).workers[0]!.oldest).toMatchObject({ method: 'GET', path: '/hold?id=b' });
    await get(server, '/release?id=b');
    await second;
  });
});

describe('node listeners and server scripts behind a trusted proxy', () => {
  for (const name of ['node-listener.mjs', 'server-script.mjs']) {
    it(`${name}: the request target as sent, the peer's address, the socket's own scheme`, async () => {
      const server = await start(['-w', '1', fixture(name)]);
      expect(JSON.parse((await get(server, '/hello?x=1')).body)).toEqual({ url: '/hello?x=1', peer: '127.0.0.1', encrypted: false });
    });
  }
});
