// Reading what a scrape of tsgunicorn's metrics says.
import { request } from './http.js';

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
