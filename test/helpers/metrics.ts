// Serving tsgunicorn's metrics on a free port and reading what a scrape says.
import net from 'node:net';
import { request } from './http.js';

/** A loopback port that was free a moment ago (for settings that log no bound port). */
export async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

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
