// Security: X-Forwarded-For and X-Forwarded-Proto are believed only from
// forwarded_allow_ips, and client bytes cannot forge error log lines. (Error
// pages leak no stack or path: reliability-app-faults.test.ts; the access log:
// core.test.ts.)
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { rawExchange, request } from '../helpers/http.js';
import { FIXTURES, serversStoppedAfterEach, type Running } from '../helpers/tsgunicorn.js';

const start = serversStoppedAfterEach();
const APP = path.join(FIXTURES, 'reliability/app.mjs');
const HONO = path.join(FIXTURES, 'hono-app.mjs');
const tmpFile = (name: string) => path.join(mkdtempSync(path.join(os.tmpdir(), 'tsg-security-')), name);

describe('forwarded headers', () => {
  const hostOf = (line: string) => line.split(' ')[0];

  it('X-Forwarded-For names the client in the access log only when the peer is trusted', async () => {
    for (const [trusted, args] of [
      [true, []],
      [false, ['--forwarded-allow-ips', '10.9.9.9']],
    ] as const) {
      const log = tmpFile('access.log');
      const server = await start(['-w', '1', '--access-logfile', log, ...args, APP]);
      await request(`${server.url}/pid`, { headers: { 'x-forwarded-for': '203.0.113.7' } });
      // A chain: the nearest untrusted hop is the client, whatever it claims before that.
      await request(`${server.url}/pid`, { headers: { 'x-forwarded-for': '198.51.100.1, 203.0.113.8' } });
      await request(`${server.url}/pid`);
      await server.stop();
      const hosts = readFileSync(log, 'utf8').split('\n').filter(Boolean).map(hostOf);
      expect(hosts).toEqual(trusted ? ['203.0.113.7', '203.0.113.8', '127.0.0.1'] : ['127.0.0.1', '127.0.0.1', '127.0.0.1']);
    }
  });

  it('a fetch app sees https:// only when X-Forwarded-Proto: https comes from a trusted peer', async () => {
    const trusted = await start(['-w', '1', HONO]);
    const untrusted = await start(['-w', '1', '--forwarded-allow-ips', '10.9.9.9', HONO]);
    const url = async (server: Running, headers: Record<string, string>) => (await request(`${server.url}/url`, { headers })).body;
    expect(await url(trusted, { 'x-forwarded-proto': 'https' })).toBe(`https://127.0.0.1:${trusted.port}/url`);
    expect(await url(trusted, {})).toBe(`http://127.0.0.1:${trusted.port}/url`);
    expect(await url(untrusted, { 'x-forwarded-proto': 'https' })).toBe(`http://127.0.0.1:${untrusted.port}/url`);
    expect(await url(untrusted, {})).toBe(`http://127.0.0.1:${untrusted.port}/url`);
    console.log('reliability: forwarded-header checks 10 (X-Forwarded-For 6, X-Forwarded-Proto 4), 0 failures');
  });
});

describe('error log', () => {
  // What a forged record would look like, were it to start a line of its own.
  const FORGED = '[2000-01-01 00:00:00 +0000] [1] [CRITICAL] forged';
  const RECORD = /^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{4}\] \[\d+\] \[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\] /;

  it('client bytes in a failing request cannot start a forged line', async () => {
    const server = await start(['-w', '1', APP]);
    // Raw control bytes in the target: the parser refuses them before any app runs.
    const raw = ['\n', '\r', '\x0b', '\x1b[2K\r', '\x85', '\xe2\x80\xa8', '\x7f', '\x00'];
    for (const bytes of raw) {
      const reply = await rawExchange(
        server.port,
        Buffer.from(`GET /throw?${bytes}${FORGED} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, 'latin1'),
        500,
      );
      expect(reply, JSON.stringify(bytes)).toMatch(/^HTTP\/1\.1 400 /);
    }
    // Percent-encoded, they reach the app: logged as sent, and quoted decoded in an app's own error message.
    const encoded = ['%0A', '%0D%0A', '%0B', '%1B%5B2K%0D', '%C2%85', '%E2%80%A8'];
    for (const escape of encoded) {
      for (const route of ['/throw?', '/missing/']) {
        expect((await request(`${server.url}${route}x${escape}${encodeURIComponent(FORGED)}`)).status).toBe(500);
      }
    }
    await server.stop();
    const lines = server.output().split('\n').filter(Boolean);
    const failures = lines.filter((l) => l.includes('Error handling request GET'));
    expect(failures).toHaveLength(encoded.length * 2);
    // No line passes for a record the server did not write.
    expect(lines.filter((l) => l.startsWith(FORGED.slice(0, 12)))).toEqual([]);
    expect(lines.filter((l) => l.includes('forged') && RECORD.test(l) && !l.includes('Error handling request'))).toEqual([]);
    expect(lines.filter((l) => /[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]/.test(l))).toEqual([]);
    console.log(
      `reliability: error-log forging attempts ${raw.length + encoded.length * 2} (${raw.length} raw refused with 400, ${encoded.length * 2} encoded reaching the app), forged lines 0`,
    );
  });
});
