// drain_delay: on a graceful stop the health check path answers 503 while every
// other request is served and metrics say draining; then the listeners close and
// the server exits 0.
import { expect, it } from 'vitest';
import { request } from '../helpers/http.js';
import { scrapeMetrics } from '../helpers/metrics.js';
import { freePort } from '../helpers/ports.js';
import { until } from '../helpers/wait.js';
import { HELLO_APP, startServer } from '../helpers/tsgunicorn.js';

it('answers the health path 503 during drain_delay, serves the rest, then stops', async () => {
  const metricsPort = await freePort();
  const server = await startServer([
    '-w',
    '2',
    '--drain-delay',
    '4',
    '--health-check-path',
    '/health',
    '--metrics-bind',
    `127.0.0.1:${metricsPort}`,
    HELLO_APP,
  ]);
  expect((await request(`${server.url}/health`)).status).toBe(200);
  expect((await scrapeMetrics(metricsPort)).text).toMatch(/^tsgunicorn_draining 0$/m);
  server.signal('SIGTERM');
  await server.waitFor(/Graceful shutdown: draining for 4 s/);
  // The master logs that line as it sends each worker its 'drain' message: a probe
  // may reach a worker a moment before the message does, as a balancer's would.
  const health = await until(
    'the health path answers 503',
    async () => {
      const reply = await request(`${server.url}/health?probe=1`);
      return reply.status === 503 && reply;
    },
    2000,
  );
  expect(health.body).toBe('Draining\n');
  const page = await request(`${server.url}/`, { headers: { connection: 'keep-alive' } });
  expect(page).toMatchObject({ status: 200, body: 'Hello, tsgunicorn!' });
  // No connection stays idle in a balancer's pool to be cut when the listeners close.
  expect(page.headers.connection).toBe('close');
  expect((await scrapeMetrics(metricsPort)).text).toMatch(/^tsgunicorn_draining 1$/m);
  expect(await server.exited()).toBe(0);
  await expect(request(`${server.url}/`)).rejects.toThrow(/ECONNREFUSED/);
});

it('a second TERM during the drain stops at once', async () => {
  const server = await startServer(['-w', '1', '--drain-delay', '60', '--health-check-path', '/health', HELLO_APP]);
  server.signal('SIGTERM');
  await server.waitFor(/draining for 60 s/);
  server.signal('SIGTERM');
  await server.waitFor(/Quick shutdown/);
  expect(await server.exited()).toBe(0);
});
