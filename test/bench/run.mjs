// `npm run bench`: starts each server in turn on 127.0.0.1 (two passes, the
// second in reverse order), drives it with wrk in keep-alive and Connection: close modes, and prints a markdown report
// with the targets met or not. BENCH_ONLY (comma-separated server ids) runs a subset. BENCH_DURATION sets the seconds per wrk run
// (default 6, which keeps a first run, one that also builds the systemd container's
// root filesystem, within the 10-minute bound); BENCH_OUT, when set, is a path the report is also written to.
// Every server runs in its own process group and is killed when the bench
// ends, whether it finishes, fails or is interrupted.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { selfSigned } from '../helpers/tls.ts';
import { describeMachine } from './lib/machine.mjs';
import { killAll, meanWorkerRssKb, readRssKb } from './lib/processes.mjs';
import { renderReport } from './lib/report.mjs';
import { readCounts, spreadBetween } from './lib/response-counts.mjs';
import { benchServers } from './lib/servers.mjs';
import { MODES } from './lib/targets.mjs';
import { ensureTools } from './lib/tools.mjs';
import { measureJournalInContainer } from './lib/journal-container.mjs';
import { runWrk } from './lib/wrk.mjs';

const RUN_BOUND_MS = 10 * 60 * 1000;
const WARMUP_S = 1;
// Extra cold starts of tsgunicorn -w 2, so start → ready is a median, not one sample.
const READY_SAMPLES = 3;
// Count files are rewritten every 200 ms; wait past that before reading them.
const COUNT_SETTLE_MS = 450;
// Workers settle after their first 200 (the watchdog thread starts after 'ready').
const IDLE_SETTLE_MS = 1000;

const durationS = Math.max(1, Math.round(Number(process.env.BENCH_DURATION ?? 6)));
const tmpDir = mkdtempSync(join(tmpdir(), 'tsgunicorn-bench-'));

function cleanUp() {
  killAll();
  rmSync(tmpDir, { recursive: true, force: true });
}
process.on('exit', cleanUp);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => process.exit(130));

// `npm run bench -- soak [MINUTES]`: the long run instead of the comparison (lib/soak.mjs).
if (process.argv[2] === 'soak') {
  const { runSoak } = await import('./lib/soak.mjs');
  const minutes = Number(process.argv[3] ?? process.env.SOAK_MINUTES ?? 60);
  process.exit(await runSoak({ minutes, freePort, tmpDir }));
}
setTimeout(() => {
  console.error(`bench: exceeded the ${RUN_BOUND_MS / 60000} minute bound, stopping`);
  process.exit(1);
}, RUN_BOUND_MS).unref();

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer().once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function measure(spec, tls, tools, pass) {
  const result = { spec, readyMs: [], modes: {} };
  if (spec.unavailable) return { ...result, skipped: spec.unavailable };
  const port = await freePort();
  // A count directory per start, so workers of an earlier start are not counted.
  const context = (start) => {
    const countDir = join(tmpDir, `counts-${spec.id}-pass${pass}-${start}`);
    mkdirSync(countDir);
    return { port, countDir, tmpDir, tls, gunicorn: tools.gunicorn };
  };
  let running;
  try {
    for (let i = 1; pass === 1 && spec.id === 'tsg' && i < READY_SAMPLES; i += 1) {
      const cold = await spec.start(context(`cold${i}`));
      result.readyMs.push(cold.readyMs);
      await cold.stop();
    }
    const ctx = context('measured');
    running = await spec.start(ctx);
    result.readyMs.push(running.readyMs);
    // What a worker holds before load grows its heap: the fixed cost of what tsgunicorn adds.
    await sleep(IDLE_SETTLE_MS);
    result.idleWorkerRssKb = meanWorkerRssKb(running.masterPid);
    await runWrk(running.url, { durationS: WARMUP_S, close: false });
    for (const mode of MODES) {
      await sleep(COUNT_SETTLE_MS);
      const before = readCounts(ctx.countDir, [running.masterPid]);
      const outcome = await runWrk(running.url, { durationS, close: mode === 'close' });
      await sleep(COUNT_SETTLE_MS);
      outcome.spread = spreadBetween(before, readCounts(ctx.countDir, [running.masterPid]));
      result.modes[mode] = outcome;
      console.error(`bench: ${spec.label}, ${mode}: ${Math.round(outcome.rps)} req/s, ${outcome.errors} errors`);
    }
    result.rssKb = readRssKb(running.masterPid);
    result.workerRssKb = meanWorkerRssKb(running.masterPid);
  } catch (err) {
    result.error = `${err.message}${running ? `\n--- server output ---\n${running.output()}` : ''}`;
    console.error(`bench: ${spec.label} failed: ${err.message.split('\n', 1)[0]}`);
  } finally {
    await running?.stop();
  }
  return result;
}

const startedAt = performance.now();
const tools = ensureTools();
const machine = describeMachine(tools);
// A throwaway certificate, so wrk can be pointed at https.
const { certfile, keyfile } = selfSigned(tmpDir);
const tls = { cert: certfile, key: keyfile };
// Two passes, the second in reverse order, keeping each server's better run:
// load from elsewhere on a shared machine then weighs on every server alike
// instead of on whichever happened to run during it.
// BENCH_ONLY=id,id runs only those servers (their ids are in lib/servers.mjs).
const only = process.env.BENCH_ONLY?.split(',').map((id) => id.trim());
const specs = benchServers(tools).filter((spec) => !only || only.includes(spec.id));
const results = new Map();
// A failed run fails the bench even when the other pass of that server worked.
const failedRuns = [];
for (const [pass, order] of [
  [1, specs],
  [2, [...specs].reverse()],
]) {
  for (const spec of order) {
    console.error(`bench: pass ${pass}, ${spec.label}`);
    const measured = await measure(spec, tls, tools, pass);
    if (measured.error) failedRuns.push(`pass ${pass}, ${spec.label}: ${measured.error.split('\n', 1)[0]}`);
    results.set(spec.id, results.has(spec.id) ? better(results.get(spec.id), measured) : measured);
  }
}

// Without journald here, the journal access log is measured in a systemd
// container instead, against the same container without an access log.
if (results.get('tsg-journal')?.skipped) {
  for (const result of await measureJournalInContainer({ durationS, warmupS: WARMUP_S })) results.set(result.spec.id, result);
}

/** Per mode the run with more requests per second; start-up samples from both. */
function better(a, b) {
  if (a.skipped || a.error) return b.error && !a.error ? a : b;
  if (b.skipped || b.error) return a;
  const modes = Object.fromEntries(MODES.map((m) => [m, (b.modes[m]?.rps ?? 0) > (a.modes[m]?.rps ?? 0) ? b.modes[m] : a.modes[m]]));
  const larger = (key) => Math.max(a[key] ?? 0, b[key] ?? 0) || undefined;
  return {
    ...a,
    modes,
    readyMs: [...a.readyMs, ...b.readyMs],
    rssKb: larger('rssKb'),
    idleWorkerRssKb: larger('idleWorkerRssKb'),
    workerRssKb: larger('workerRssKb'),
  };
}
const report = renderReport({ machine, durationS, results, elapsedS: (performance.now() - startedAt) / 1000 });
process.stdout.write(report);
if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, report);
if (failedRuns.length > 0) console.error(`bench: failed runs:\n${failedRuns.join('\n')}`);
process.exitCode = failedRuns.length > 0 || [...results.values()].some((r) => r.error) ? 1 : 0;
