// `npm run bench -- soak [MINUTES]`: tsgunicorn -w 2 for hours, not seconds. A
// keep-alive client sends about SOAK_RATE requests a second (default 1,500), the
// metrics are scraped every second and the master gets a HUP every minute. The
// report gives the master's and the workers' RSS slopes (whole run, and each half,
// to see whether growth levels off), the client's errors (those on a reused
// keep-alive connection, and how long after a HUP, told apart), and whether the
// request counter the metrics give equals the responses the client received.
// MINUTES (or SOAK_MINUTES) defaults to 60; the run is bounded to MINUTES + 3.
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { meanWorkerRssKb, readRssKb } from './processes.mjs';
import { tsgunicorn } from './servers.mjs';

const HUP_EVERY_MS = 60_000;
const SCRAPE_EVERY_MS = 1000;
const SAMPLE_EVERY_MS = 5000;
const TICK_MS = 20;
// RSS before this point is start-up and first-use growth, not a trend.
const WARMUP_MS = 60_000;

export async function runSoak({ minutes, freePort, tmpDir }) {
  const rate = Number(process.env.SOAK_RATE ?? 1500);
  const durationMs = minutes * 60_000;
  setTimeout(
    () => {
      console.error(`soak: exceeded the ${minutes + 3} minute bound, stopping`);
      process.exit(1);
    },
    durationMs + 3 * 60_000,
  ).unref();

  const metricsPort = await freePort();
  const ctx = { port: await freePort(), countDir: '', tmpDir, tls: null };
  const server = await tsgunicorn(() => ['--metrics-bind', `127.0.0.1:${metricsPort}`], 'hello-listener.mjs')(ctx);
  const master = server.masterPid;
  console.error(
    `soak: ${minutes} min at ${rate} req/s, HUP every ${HUP_EVERY_MS / 1000} s, scrape every ${SCRAPE_EVERY_MS / 1000} s (master ${master})`,
  );

  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  const client = { sent: 0, responses: 0, non200: 0, errors: new Map(), reusedErrors: 0, errorAfterHupMs: [] };
  const scrapes = { ok: 0, failed: 0, slowest: 0 };
  const samples = [];
  let startedAt = Date.now();
  let lastHupAt = startedAt;
  let hups = 0;

  const send = () => {
    client.sent++;
    const req = http.get(server.url, { agent }, (res) => {
      res.resume();
      res.on('end', () => {
        client.responses++;
        if (res.statusCode !== 200) client.non200++;
      });
    });
    req.on('error', (err) => {
      const code = err.code ?? err.message;
      client.errors.set(code, (client.errors.get(code) ?? 0) + 1);
      if (req.reusedSocket) client.reusedErrors++;
      client.errorAfterHupMs.push(Date.now() - lastHupAt);
    });
  };
  // Resolves with the exposition text, or null when the scrape failed (each counted unless `record` is false).
  const scrape = (record = true) =>
    new Promise((resolve) => {
      const began = Date.now();
      const req = http.get(`http://127.0.0.1:${metricsPort}/metrics`, { agent: false, timeout: 5000 }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          if (record) {
            if (res.statusCode === 200) scrapes.ok++;
            else scrapes.failed++;
            scrapes.slowest = Math.max(scrapes.slowest, Date.now() - began);
          }
          resolve(res.statusCode === 200 ? text : null);
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => {
        if (record) scrapes.failed++;
        resolve(null);
      });
    });

  // The readiness probe was counted too: compare what the load adds. The master
  // serves metrics a moment after its workers answer, so this first scrape waits for it.
  let first = null;
  for (let tries = 0; first === null && tries < 100; tries++) {
    first = await scrape(false);
    if (first === null) await sleep(100);
  }
  const before = metricSum(first ?? '', 'http_requests_total');
  startedAt = Date.now();
  lastHupAt = startedAt;
  // Requests spread evenly: each tick sends what the rate owes since the start.
  const load = setInterval(() => {
    const owed = Math.floor(((Date.now() - startedAt) * rate) / 1000) - client.sent;
    for (let i = 0; i < owed; i++) send();
  }, TICK_MS);
  const scraper = setInterval(() => void scrape(), SCRAPE_EVERY_MS);
  const hupper = setInterval(() => {
    lastHupAt = Date.now();
    hups++;
    process.kill(master, 'SIGHUP');
  }, HUP_EVERY_MS);
  const sampler = setInterval(() => {
    samples.push({ t: Date.now() - startedAt, master: readRssKb(master), workerMean: meanWorkerRssKb(master) ?? 0 });
  }, SAMPLE_EVERY_MS);
  let lastReport = startedAt;
  while (Date.now() - startedAt < durationMs) {
    await sleep(1000);
    if (Date.now() - lastReport >= 5 * 60_000) {
      lastReport = Date.now();
      const last = samples.at(-1);
      console.error(
        `soak: ${Math.round((Date.now() - startedAt) / 60_000)} min, ${client.responses} responses, ${sumErrors(client)} errors, master ${last?.master} kB`,
      );
    }
  }
  clearInterval(load);
  clearInterval(hupper);
  clearInterval(sampler);
  clearInterval(scraper);

  // Every response received, and every worker's last counts with the master, before the final scrape.
  const settleBy = Date.now() + 30_000;
  while (client.responses + sumErrors(client) < client.sent && Date.now() < settleBy) await sleep(100);
  await sleep(3000);
  const text = (await scrape()) ?? '';
  const counted = metricSum(text, 'http_requests_total') - before;
  agent.destroy();
  await server.stop();

  const report = renderSoak({ minutes, rate, hups, client, scrapes, samples, counted, elapsedMs: Date.now() - startedAt });
  process.stdout.write(report);
  if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, report);
  return sumErrors(client) === 0 && counted === client.responses && scrapes.failed === 0 ? 0 : 1;
}

const sumErrors = (client) => [...client.errors.values()].reduce((a, b) => a + b, 0);

function metricSum(text, name) {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

/** Least-squares slope of kB over ms, in MB per minute. */
function slopeMbPerMin(points, key) {
  const pts = points.filter((p) => p[key] !== undefined);
  if (pts.length < 2) return NaN;
  const n = pts.length;
  const mt = pts.reduce((a, p) => a + p.t, 0) / n;
  const mv = pts.reduce((a, p) => a + p[key], 0) / n;
  const num = pts.reduce((a, p) => a + (p.t - mt) * (p[key] - mv), 0);
  const den = pts.reduce((a, p) => a + (p.t - mt) ** 2, 0);
  return ((num / den) * 60_000) / 1024;
}

function renderSoak({ minutes, rate, hups, client, scrapes, samples, counted, elapsedMs }) {
  const steady = samples.filter((s) => s.t >= WARMUP_MS);
  const mid = steady.length ? (steady[0].t + steady.at(-1).t) / 2 : 0;
  const halves = [steady.filter((s) => s.t < mid), steady.filter((s) => s.t >= mid)];
  const mb = (kb) => (kb === undefined ? '?' : (kb / 1024).toFixed(1));
  const slope = (pts, key) => `${slopeMbPerMin(pts, key).toFixed(3)} MB/min`;
  const at = (i) => samples.at(i) ?? {};
  const errors = [...client.errors].map(([code, n]) => `${code} ${n}`).join(', ') || 'none';
  const afterHup = client.errorAfterHupMs.length ? ` (ms after the last HUP: ${client.errorAfterHupMs.join(', ')})` : '';
  return [
    `# Soak: tsgunicorn -w 2, ${minutes} min`,
    '',
    `| | |`,
    `|---|---|`,
    `| Duration | ${(elapsedMs / 60_000).toFixed(1)} min, ${rate} req/s offered, ${hups} HUPs, a scrape every ${SCRAPE_EVERY_MS / 1000} s |`,
    `| Requests | ${client.sent} sent, ${client.responses} responses (${client.non200} not 200) |`,
    `| Client errors | ${errors}; on a reused keep-alive connection: ${client.reusedErrors}${afterHup} |`,
    `| Counter exactness | http_requests_total ${counted} vs ${client.responses} responses: ${counted === client.responses ? 'exact' : `off by ${counted - client.responses}`} |`,
    `| Scrapes | ${scrapes.ok} ok, ${scrapes.failed} failed, slowest ${scrapes.slowest} ms |`,
    `| Master RSS | ${mb(at(0).master)} → ${mb(at(-1).master)} MB; slope after the first minute ${slope(steady, 'master')} (first half ${slope(halves[0], 'master')}, second half ${slope(halves[1], 'master')}) |`,
    `| Worker RSS (mean of live workers) | ${mb(at(0).workerMean)} → ${mb(at(-1).workerMean)} MB; slope ${slope(steady, 'workerMean')} (first half ${slope(halves[0], 'workerMean')}, second half ${slope(halves[1], 'workerMean')}) |`,
    '',
  ].join('\n');
}
