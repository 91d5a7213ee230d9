// max_connections is per worker: a full worker stops accepting, so the kernel
// hands new connections to the other workers, and holds them in the backlog
// while every worker is full. No connection is ever accepted and then reset.
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { metricSum, scrapeMetrics } from '../helpers/metrics.js';
import { freePort } from '../helpers/ports.js';
import { FIXTURES, serversStoppedAfterEach } from '../helpers/tsgunicorn.js';
import { until } from '../helpers/wait.js';

const start = serversStoppedAfterEach();
const APP = path.join(FIXTURES, 'reliability/app.mjs');

interface Client {
  socket: net.Socket;
  /** Status of the first response, once it arrived. */
  status?: number | undefined;
  error?: string | undefined;
}

/** Opens `count` keep-alive connections, each sending one request and then held open. */
function openClients(port: number, count: number): Client[] {
  return Array.from({ length: count }, () => {
    const socket = net.connect(port, '127.0.0.1');
    const client: Client = { socket };
    let text = '';
    socket.on('connect', () => socket.write('GET /pid HTTP/1.1\r\nHost: x\r\n\r\n'));
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      client.status ??= Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]) || undefined;
    });
    socket.on('error', (err: NodeJS.ErrnoException) => (client.error = err.code ?? err.message));
    socket.on('close', () => (client.error ??= client.status === undefined ? 'closed before a response' : undefined));
    return client;
  });
}

const answered = (clients: Client[]) => clients.filter((c) => c.status !== undefined).length;
const failed = (clients: Client[]) => clients.filter((c) => c.error !== undefined).map((c) => c.error);

describe('max_connections', () => {
  it('-w 2 with a limit that fits every client: none is lost', async () => {
    const server = await start(['-w', '2', '--max-connections', '30', APP]);
    // 58 fit in 2 × 30 however unevenly the kernel spreads them over the two workers.
    const clients = openClients(server.port, 58);
    try {
      await until('58 responses', () => answered(clients) + failed(clients).length === 58 || undefined, 20000);
      expect(failed(clients)).toEqual([]);
      expect(clients.every((c) => c.status === 200)).toBe(true);
    } finally {
      for (const c of clients) c.socket.destroy();
    }
  });

  it('over the limit, the rest wait in the backlog and are served once connections close; pauses are counted and logged', async () => {
    const metricsPort = await freePort();
    const server = await start(['-w', '2', '--max-connections', '20', '--metrics-bind', `127.0.0.1:${metricsPort}`, APP]);
    const first = openClients(server.port, 40);
    await until('40 responses', () => answered(first) === 40 || failed(first).length > 0, 20000);
    expect(failed(first)).toEqual([]);
    // Both workers are full: these connect (the kernel completes the handshake) and wait.
    const waiting = openClients(server.port, 20);
    const metrics = await until('a pause in the metrics', async () => {
      const text = (await scrapeMetrics(metricsPort)).text;
      return metricSum(text, 'tsgunicorn_max_connections_pauses_total') >= 2 ? text : undefined;
    });
    expect(metricSum(metrics, 'tsgunicorn_max_connections_pauses_total')).toBeGreaterThanOrEqual(2);
    expect(failed(waiting)).toEqual([]);
    expect(answered(waiting)).toBe(0);
    for (const c of first) c.socket.destroy();
    try {
      await until('20 more responses', () => answered(waiting) + failed(waiting).length === 20 || undefined, 20000);
      expect(failed(waiting)).toEqual([]);
      expect(waiting.every((c) => c.status === 200)).toBe(true);
    } finally {
      for (const c of waiting) c.socket.destroy();
    }
    // Logged in aggregate: one line per worker for its first pause, not one per connection.
    const lines = server
      .output()
      .split('\n')
      .filter((l) => l.includes('Reached max_connections (20)'));
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(2);
    expect(lines[0]).toMatch(/\[WARNING\] Reached max_connections \(20\) once: stopped accepting until a connection closes/);
  });

  it('counts the connections of every socket a worker accepts on', async () => {
    const [first, second, metricsPort] = [await freePort(), await freePort(), await freePort()];
    const bind = ['-b', `127.0.0.1:${first}`, '-b', `127.0.0.1:${second}`];
    const server = await start(['-w', '1', '--max-connections', '2', ...bind, '--metrics-bind', `127.0.0.1:${metricsPort}`, APP]);
    // The limit is reached on the second socket alone; a client of the first is served once one of those closes.
    const full = openClients(second, 2);
    await until('2 responses', () => answered(full) === 2 || failed(full).length > 0, 20000);
    expect(failed(full)).toEqual([]);
    await until('the pause in the metrics', async () =>
      metricSum((await scrapeMetrics(metricsPort)).text, 'tsgunicorn_max_connections_pauses_total') >= 1 ? true : undefined,
    );
    const waiting = openClients(first, 1);
    full[0]!.socket.destroy();
    try {
      await until('the waiting client served', () => answered(waiting) + failed(waiting).length === 1 || undefined, 20000);
      expect(waiting[0]!.status).toBe(200);
    } finally {
      for (const c of [...full, ...waiting]) c.socket.destroy();
    }
    expect(server.output()).toMatch(/Reached max_connections \(2\) once/);
  });
});
