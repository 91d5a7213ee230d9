// Slow clients: slowloris connections trickling their headers, slow body
// senders and readers that never read do not keep the workers from serving
// others, and the first two are cut by header_timeout and request_timeout.
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { load, request } from '../helpers/http.js';
import { FIXTURES, startServer, workerPids, type Running } from '../helpers/tsgunicorn.js';
import { statusesOf } from '../fixtures/reliability/raw-client.js';
import { sleep } from '../helpers/wait.js';

const servers: Running[] = [];
const start = async (...args: Parameters<typeof startServer>) => {
  const server = await startServer(...args);
  servers.push(server);
  return server;
};
const trickles: Array<{ stop(): void }> = [];
afterEach(async () => {
  for (const t of trickles.splice(0)) t.stop();
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
const APP = path.join(FIXTURES, 'reliability/app.mjs');
// How late after its timeout the server may cut a connection: Node's sweep
// interval plus a loaded 2-core CI machine.
const SLACK_MS = 2500;

interface Held {
  openedAt: number;
  closedAt?: number;
  received: string;
}

/**
 * Opens `count` connections that send `head` and then one more byte of `drip`
 * every `everyMs`, forever: the server has to be the one that ends them.
 */
async function trickle(port: number, count: number, head: string, drip: string, everyMs: number) {
  const held: Held[] = [];
  const sockets: net.Socket[] = [];
  await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<void>((resolve, reject) => {
          const socket = net.connect(port, '127.0.0.1');
          const h: Held = { openedAt: 0, received: '' };
          socket.once('connect', () => {
            h.openedAt = Date.now();
            socket.write(head);
            resolve();
          });
          socket.once('error', (err) => (h.openedAt ? undefined : reject(err)));
          socket.on('data', (d: Buffer) => (h.received += d.toString('latin1')));
          socket.once('close', () => (h.closedAt = Date.now()));
          held.push(h);
          sockets.push(socket);
        }),
    ),
  );
  let i = 0;
  const timer = setInterval(() => {
    const byte = drip[i++ % drip.length]!;
    for (const socket of sockets) if (!socket.destroyed) socket.write(byte);
  }, everyMs);
  const handle = {
    held,
    open: () => held.filter((h) => h.closedAt === undefined).length,
    stop() {
      clearInterval(timer);
      for (const socket of sockets) socket.destroy();
    },
  };
  trickles.push(handle);
  return handle;
}

/** `clients` loops of GET /pid on fresh connections, `total` in all; the latencies of the successes. */
async function normalClients(url: string, clients: number, total: number) {
  const { ok, errors, latenciesMs } = await load({ url: `${url}/pid`, clients, total, durationMs: Infinity });
  latenciesMs.sort((a, b) => a - b);
  const pct = (p: number) => Math.round(latenciesMs[Math.min(latenciesMs.length - 1, Math.floor(p * latenciesMs.length))] ?? NaN);
  return { ok, errors, summary: `p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms, max ${pct(1)} ms` };
}

/**
 * Each connection was answered 408 or reset, nothing else. A socket closed while
 * its client is still sending is reset (RFC 1122 4.2.2.13), and a reset can
 * discard the 408 before the client reads it: on a loaded machine the server
 * cuts a thousand trickling connections in one sweep, and some lose their answer.
 */
function expectCutWith408(held: Held[]): void {
  const answers = held.map((h) => statusesOf(h.received)[0]);
  expect(answers.filter((status) => status !== undefined && status !== 408)).toEqual([]);
  expect(answers).toContain(408);
}

describe('slow clients', () => {
  it('1,000 slowloris connections are held while 200 normal requests succeed, then cut by header_timeout', async () => {
    // Long enough that the normal requests finish well inside it on a loaded CI machine.
    const headerTimeout = 8;
    const server = await start(['-w', '2', '--header-timeout', String(headerTimeout), '--request-timeout', '30', APP]);
    const slowloris = await trickle(server.port, 1000, 'GET /pid HTTP/1.1\r\nHost: x\r\nX-Slow: ', 'abcdefgh', 300);
    await sleep(300);
    const loadStarted = Date.now();
    const normal = await normalClients(server.url, 4, 200);
    const loadMs = Date.now() - loadStarted;
    const heldDuringLoad = slowloris.open();
    expect(normal.errors.slice(0, 5)).toEqual([]);
    expect(normal.ok).toBe(200);
    // Every slowloris connection was still open when the last normal request was answered.
    expect(heldDuringLoad, `open when the normal requests were done, after ${loadMs} ms`).toBe(1000);

    const deadline = Date.now() + headerTimeout * 1000 + SLACK_MS + 1000;
    while (slowloris.open() > 0 && Date.now() < deadline) await sleep(100);
    const late = slowloris.held.filter((h) => h.closedAt === undefined || h.closedAt - h.openedAt > headerTimeout * 1000 + SLACK_MS);
    const lifetimes = slowloris.held.map((h) => (h.closedAt ?? Date.now()) - h.openedAt).sort((a, b) => a - b);
    expect(
      late.length,
      `connections not cut within header_timeout + ${SLACK_MS} ms; lifetimes ${lifetimes[0]}..${lifetimes.at(-1)} ms`,
    ).toBe(0);
    expect(lifetimes[0]).toBeGreaterThanOrEqual(headerTimeout * 1000 - 200);
    expectCutWith408(slowloris.held);
    expect((await request(`${server.url}/pid`)).status).toBe(200);
    console.log(
      `reliability: slowloris connections held 1000 while normal requests 200/200 succeeded (${normal.summary}, ${loadMs} ms in all); all cut by header_timeout ${headerTimeout} s after ${lifetimes[0]}..${lifetimes.at(-1)} ms, 0 failures`,
    );
  });

  it('slow body senders are cut by request_timeout while others are served', async () => {
    const requestTimeout = 4;
    const server = await start(['-w', '2', '--header-timeout', '2', '--request-timeout', String(requestTimeout), APP]);
    const head = 'POST /body HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n';
    const senders = await trickle(server.port, 50, head, 'x', 200);
    const normal = await normalClients(server.url, 4, 100);
    const heldDuringLoad = senders.open();
    expect(normal.errors.slice(0, 5)).toEqual([]);
    expect(heldDuringLoad).toBe(50);

    const deadline = Date.now() + requestTimeout * 1000 + SLACK_MS + 1000;
    while (senders.open() > 0 && Date.now() < deadline) await sleep(100);
    const lifetimes = senders.held.map((h) => (h.closedAt ?? Date.now()) - h.openedAt).sort((a, b) => a - b);
    expect(senders.open(), `still open; lifetimes ${lifetimes[0]}..${lifetimes.at(-1)} ms`).toBe(0);
    expect(lifetimes.at(-1)).toBeLessThanOrEqual(requestTimeout * 1000 + SLACK_MS);
    // Past header_timeout (2 s): it is request_timeout that cuts a request whose headers are complete.
    expect(lifetimes[0]).toBeGreaterThanOrEqual(requestTimeout * 1000 - 200);
    expectCutWith408(senders.held);
    console.log(
      `reliability: slow body senders 50 held while normal requests 100/100 succeeded (${normal.summary}); all cut by request_timeout ${requestTimeout} s after ${lifetimes[0]}..${lifetimes.at(-1)} ms, 0 failures`,
    );
  });

  it('a body that stops coming is cut by request_timeout, even when header_timeout is longer', async () => {
    const requestTimeout = 3;
    const headerTimeout = 20;
    const server = await start(['-w', '1', '--header-timeout', String(headerTimeout), '--request-timeout', String(requestTimeout), APP]);
    const socket = net.connect(server.port, '127.0.0.1');
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    const closed = new Promise((resolve) => socket.on('error', () => {}).on('close', resolve));
    await new Promise((resolve) => socket.once('connect', resolve));
    const openedAt = Date.now();
    // 3 bytes of a 100-byte body, then nothing.
    socket.write('POST /body HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nabc');
    await closed;
    const lifetime = Date.now() - openedAt;
    expect(statusesOf(received)[0]).toBe(408);
    // Cut by header_timeout, it would live 20 s.
    expect(lifetime).toBeLessThan(requestTimeout * 1000 + SLACK_MS);
  });

  it('readers that never read a large response do not block other clients', async () => {
    const server = await start(['-w', '2', APP]);
    const before = (await workerPids(server.proc.pid!)).sort();
    const readers = await Promise.all(
      Array.from(
        { length: 20 },
        () =>
          new Promise<net.Socket>((resolve, reject) => {
            const socket = net.connect(server.port, '127.0.0.1', () => {
              // Never read: the 8 MB response fills the socket buffers and waits in the worker.
              socket.pause();
              socket.write('GET /big?mb=8 HTTP/1.1\r\nHost: x\r\n\r\n');
              resolve(socket);
            });
            socket.once('error', reject);
          }),
      ),
    );
    trickles.push({ stop: () => readers.forEach((s) => s.destroy()) });
    await sleep(500);
    const normal = await normalClients(server.url, 4, 200);
    expect(normal.errors.slice(0, 5)).toEqual([]);
    expect(normal.ok).toBe(200);
    expect(readers.filter((s) => s.destroyed)).toHaveLength(0);
    for (const socket of readers) socket.destroy();
    await sleep(300);
    expect((await request(`${server.url}/pid`)).status).toBe(200);
    expect((await workerPids(server.proc.pid!)).sort()).toEqual(before);
    console.log(
      `reliability: slow readers 20 (8 MB each, never read) held while normal requests 200/200 succeeded (${normal.summary}), 0 failures`,
    );
  });
});
