// Reading what a scrape of tsgunicorn's metrics says.
import { request } from './http.js';
import { until } from './wait.js';

/** One scrape of http://127.0.0.1:PORT/metrics: its text and how long it took. */
export async function scrapeMetrics(port: number): Promise<{ status: number; text: string; ms: number }> {
  const started = Date.now();
  const reply = await request(`http://127.0.0.1:${port}/metrics`);
  return { status: reply.status, text: reply.body, ms: Date.now() - started };
}

/** The sum of a metric's samples whose line matches `filter`. */
export function metricSum(text: string, name: string, filter = ''): number {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .filter((l) => l.includes(filter))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

/** The flags for metrics on 127.0.0.1:`metricsPort` and a health check of `path` every 0.2 s from the start. */
export const healthCheckArgs = (metricsPort: number, path: string): string[] => [
  '--metrics-bind',
  `127.0.0.1:${metricsPort}`,
  '--health-check-path',
  path,
  '--health-check-period',
  '0.2',
  '--health-check-initial-delay',
  '0',
];

/** Resolves once the metrics on `metricsPort` say the health check passes. */
export async function healthCheckPassed(metricsPort: number): Promise<void> {
  await until('the health check passes', async () => (await scrapeMetrics(metricsPort)).text.includes('tsgunicorn_health_status 1'));
}
