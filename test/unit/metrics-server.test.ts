import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { startMetricsServer } from '../../src/metrics/server.js';
import { builtModule, isPromClient, recordLoads } from '../helpers/loaded-modules.js';

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) {
    s.close();
    s.closeAllConnections();
  }
});

async function start(handler: () => Promise<string>, errors: unknown[] = []) {
  const server = await startMetricsServer({ kind: 'tcp', host: '127.0.0.1', port: 0 }, handler, { error: (_msg, err) => errors.push(err) });
  servers.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
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
