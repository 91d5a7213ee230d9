import net, { type AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { startMetricsServer } from '../../src/metrics/server.js';
import { until } from '../helpers/wait.js';
import { builtModule, isPromClient, recordLoads } from '../helpers/loaded-modules.js';

const servers: Server[] = [];
const requestsSeen = new Map<string, number>();
const pendingRequests = (base: string) => requestsSeen.get(base) ?? 0;

function openIdle(port: number): Promise<{ socket: net.Socket; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const held = { socket: net.connect(port, '127.0.0.1'), closed: false };
    held.socket.on('error', () => {}).once('close', () => (held.closed = true));
    held.socket.once('connect', () => resolve(held)).once('error', reject);
  });
}
afterEach(() => {
  for (const s of servers.splice(0)) {
    s.close();
    s.closeAllConnections();
  }
});

async function start(handler: () => Promise<string>, errors: unknown[] = []) {
  const server = await startMetricsServer({ kind: 'tcp', host: '127.0.0.1', port: 0 }, handler, { error: (_msg, err) => errors.push(err) });
  servers.push(server);
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  server.on('request', () => requestsSeen.set(base, pendingRequests(base) + 1));
  return base;
}

describe('startMetricsServer', () => {
  it('serves the exposition at GET /metrics in the Prometheus text format', async () => {
    const base = await start(() => Promise.resolve('up 1\n'));
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    // The server names the type itself so as not to load prom-client: it must be the one prom-client renders.
    expect(res.headers.get('content-type')).toBe(Registry.PROMETHEUS_CONTENT_TYPE);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await res.text()).toBe('up 1\n');
  });

  it('answers 404 elsewhere and 405 to other methods on /metrics', async () => {
    const base = await start(() => Promise.resolve('up 1\n'));
    expect((await fetch(`${base}/`)).status).toBe(404);
    expect((await fetch(`${base}/metrics/x`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  it('answers 500 and logs when rendering fails', async () => {
    const errors: unknown[] = [];
    const failure = new Error('boom');
    const base = await start(() => Promise.reject(failure), errors);
    expect((await fetch(`${base}/metrics`)).status).toBe(500);
    expect(errors).toEqual([failure]);
  });

  it('renders once for the scrapes that arrive while a rendering runs', async () => {
    let renders = 0;
    let finish: (body: string) => void = () => {};
    const base = await start(() => {
      renders++;
      return new Promise<string>((resolve) => (finish = resolve));
    });
    const scrapes = Array.from({ length: 10 }, () => fetch(`${base}/metrics`).then((r) => r.text()));
    await until('10 scrapes waiting on one rendering', () => renders === 1 && pendingRequests(base) >= 10);
    finish('up 1\n');
    expect(await Promise.all(scrapes)).toEqual(Array(10).fill('up 1\n'));
    expect(renders).toBe(1);
    // The next scrape renders anew.
    const next = fetch(`${base}/metrics`).then((r) => r.text());
    await until('a second rendering', () => renders === 2);
    finish('up 2\n');
    expect(await next).toBe('up 2\n');
  });

  it('caps its connections and closes one that sends no request', async () => {
    const base = await start(() => Promise.resolve('up 1\n'));
    const port = Number(new URL(base).port);
    const held = await Promise.all(Array.from({ length: 40 }, () => openIdle(port)));
    // Past the cap, connections are closed by the server at once; the others wait for headers.
    await until('the connections past the cap closed', () => held.filter((c) => c.closed).length >= 8);
    expect(held.filter((c) => c.closed).length).toBe(8);
    // Silent connections are closed by the header timeout, not held for Node's default minute.
    await until('the silent connections closed', () => held.every((c) => c.closed), 30_000);
    for (const c of held) c.socket.destroy();
  }, 40_000);

  // An address that is not HOST:PORT never gets here: metrics_bind refuses it when read (settings.test.ts).
  it('rejects a port in use', async () => {
    const log = { error: () => {} };
    const taken = Number(new URL(await start(() => Promise.resolve(''))).port);
    await expect(startMetricsServer({ kind: 'tcp', host: '127.0.0.1', port: taken }, () => Promise.resolve(''), log)).rejects.toThrow(
      /EADDRINUSE/,
    );
  });

  it('does not load prom-client: the master imports it whether or not metrics_bind is set', async () => {
    const { imported } = await recordLoads(
      ['imported'],
      `
      await import(${JSON.stringify(builtModule('metrics/server.js'))});
      mark('imported');`,
    );
    expect(imported.loaded.some((url) => url.endsWith('/metrics/server.js'))).toBe(true);
    expect(imported.loaded.filter(isPromClient)).toEqual([]);
  });
});
