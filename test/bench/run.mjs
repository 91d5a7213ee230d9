// `npm run bench`: three parts, each against peers measured in the same run.
// 1. CPU time per request (lib/cpu.mjs): tsgunicorn -w 1 beside its bare twin, measured at the same time, the
//    servers pinned to one CPU and their loads to the other; the journal access log in a systemd container.
// 2. Throughput: each server on 127.0.0.1 driven by wrk in keep-alive and Connection: close modes, in passes
//    alternating in order; tsgunicorn -w 2 and bare node:cluster in more passes, since they are compared.
// 3. HTTP/2 throughput: h2load against tsgunicorn -w 2 and bare node:http2 under node:cluster, h2c and h2.
// 4. Worker memory: RSS idle, after light load (sequential requests) and after the throughput runs.
// 5. The compared pairs of 2 and 3 side by side, driven at the same time: the throughput targets are on these.
// BENCH_ONLY (comma-separated ids of lib/servers.mjs, throughput and CPU alike) runs a subset. BENCH_DURATION
// sets the seconds per throughput run (default 3), BENCH_CPU_DURATION per CPU round (default 2); BENCH_OUT, when
// set, is a path the report is also written to. Every server runs in its own process group and is killed when
// the bench ends, whether it finishes, fails or is interrupted.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { selfSigned } from '../helpers/tls.ts';
import { measureCpuGroups, SERVER_CPU, treeCpu } from './lib/cpu.mjs';
import { describeMachine } from './lib/machine.mjs';
import { killAll, meanWorkerRssKb, readRssKb } from './lib/processes.mjs';
import { renderReport } from './lib/report.mjs';
import { readCounts, spreadBetween } from './lib/response-counts.mjs';
import { benchServers, cpuServerGroups, http2Servers, oneWorkerServers } from './lib/servers.mjs';
import { MODES, median } from './lib/targets.mjs';
import { H2LOAD_WARMUP_REQUESTS, runH2load } from './lib/h2load.mjs';
import { ensureTools } from './lib/tools.mjs';
import { measureJournalInContainer } from './lib/journal-container.mjs';
import { throughputSideBySide } from './lib/side-by-side.mjs';
import { runWrk } from './lib/wrk.mjs';

// The whole bench took 11 minutes at load 9.5 before the HTTP/2 rows (about 6 more).
const RUN_BOUND_MS = 25 * 60 * 1000;
const WARMUP_S = 1;
// Extra cold starts of tsgunicorn -w 2, so start → ready is a median, not one sample.
const READY_SAMPLES = 3;
// Count files are rewritten every 200 ms; wait past that before reading them.
const COUNT_SETTLE_MS = 450;
// Workers settle after their first 200 (the watchdog thread starts after 'ready'), and after light load.
const IDLE_SETTLE_MS = 1000;
// Throughput passes: the compared pair runs in more of them, interleaved with the rest in the first.
const PASSES = 2;
const ANCHOR_PASSES = 5;
const ANCHORS = ['cluster-none', 'tsg'];
const HTTP2_PASSES = 3;
// Passes of the compared pairs side by side (lib/side-by-side.mjs), on each of fresh starts: the throughput targets
// are on them. Nine in all, since a pass in which one server's workers got uneven shares of the connections (either
// server's: the kernel decides) moves its ratio by up to 20 %, and a median of five still moved with one such pass.
const SIDE_BY_SIDE_STARTS = 3;
const SIDE_BY_SIDE_PASSES = 3;
// CPU rounds per row and mode, each beside its twin: CPU_ROUNDS on each of CPU_STARTS fresh starts of the servers
// (lib/cpu.mjs says why fresh).
const CPU_STARTS = 3;
const CPU_ROUNDS = 2;
// Light load on one worker each, in rounds alternating in order.
const LIGHT_ROUNDS = 5;
// Light load: sequential requests, alternating blocks on new connections and on one kept-alive connection.
const LIGHT_REQUESTS = 2000;
const LIGHT_BLOCK = 100;

const durationS = Math.max(1, Math.round(Number(process.env.BENCH_DURATION ?? 3)));
const cpuDurationS = Math.max(1, Math.round(Number(process.env.BENCH_CPU_DURATION ?? 2)));
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
// What was measured so far, by server id: CPU rows, and each throughput server's passes.
const cpu = new Map();
const runs = new Map();
// The one-worker pair's RSS after light load, by server id.
const light = new Map();
// The HTTP/2 pairs measured so far.
const http2 = [];
// The compared pairs measured side by side so far.
const sideBySide = [];
setTimeout(() => {
  console.error(`bench: exceeded the ${RUN_BOUND_MS / 60000} minute bound, stopping`);
  writeReport(`**Stopped at the ${RUN_BOUND_MS / 60000} minute bound**: what follows is what was measured until then.`);
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

/** One GET on 127.0.0.1; a new connection unless agent is given. */
function get(url, agent) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: agent ?? false, headers: agent ? {} : { connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
  });
}

/** LIGHT_REQUESTS sequential requests, in blocks alternating between Connection: close and keep-alive. */
async function lightLoad(url) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < LIGHT_REQUESTS; i++) await get(url, Math.floor(i / LIGHT_BLOCK) % 2 === 0 ? undefined : agent);
  } finally {
    agent.destroy();
  }
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
    // What the first requests allocate or load lazily, before heavy load grows the heap. In every pass of the
    // compared pair: one sample scatters by several MB (how the kernel splits the requests between the two
    // workers decides whether a worker's young generation grows), so the report gives their median.
    if (ANCHORS.includes(spec.id)) {
      await lightLoad(running.url);
      await sleep(IDLE_SETTLE_MS);
      result.lightWorkerRssKb = meanWorkerRssKb(running.masterPid);
    }
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
// BENCH_ONLY=id,id runs only those servers (their ids are in lib/servers.mjs).
const only = process.env.BENCH_ONLY?.split(',').map((id) => id.trim());
const wanted = (spec) => !only || only.includes(spec.id);
// A failed run fails the bench.
const failedRuns = [];

// 1. CPU time per request.
const cpuGroups = cpuServerGroups()
  .map((group) => group.filter(wanted))
  .filter((group) => group.length > 0);
const measuredCpu = await measureCpuGroups(cpuGroups, {
  starts: CPU_STARTS,
  rounds: CPU_ROUNDS,
  durationS: cpuDurationS,
  warmupS: WARMUP_S,
  modes: MODES,
  startContext: async (spec) => {
    const countDir = mkdtempSync(join(tmpDir, `cpu-counts-${spec.id}-`));
    return { port: await freePort(), countDir, tmpDir, tls, cpu: SERVER_CPU };
  },
  log: (line) => console.error(line),
});
for (const [id, result] of measuredCpu) cpu.set(id, result);
if (!only || only.includes('tsg-journal')) {
  const ports = [await freePort(), await freePort()];
  for (const result of await measureJournalInContainer({
    rounds: CPU_STARTS * CPU_ROUNDS,
    durationS: cpuDurationS,
    warmupS: WARMUP_S,
    ports,
  })) {
    cpu.set(result.spec.id, result);
  }
}
for (const result of cpu.values()) if (result.error) failedRuns.push(`CPU, ${result.spec.label}: ${result.error.split('\n', 1)[0]}`);

// 2. Throughput, in passes alternating in order: load from elsewhere on a shared machine then weighs on every
// server alike instead of on whichever happened to run during it.
const specs = benchServers(tools).filter(wanted);
for (const spec of specs) runs.set(spec.id, []);
for (let pass = 1; pass <= ANCHOR_PASSES; pass++) {
  const inPass = specs.filter((spec) => pass <= PASSES || ANCHORS.includes(spec.id));
  for (const spec of pass % 2 === 1 ? inPass : [...inPass].reverse()) {
    console.error(`bench: pass ${pass}, ${spec.label}`);
    const measured = await measure(spec, tls, tools, pass);
    if (measured.error) failedRuns.push(`pass ${pass}, ${spec.label}: ${measured.error.split('\n', 1)[0]}`);
    runs.get(spec.id).push(measured);
  }
}

// 3. Memory after light load, one worker each: with two, how the kernel splits the sequential requests between
// them (1,475/526 in one run, 1,634/367 in the next) moves their mean by several MB either way.
const lightSpecs = oneWorkerServers().filter(wanted);
for (const spec of lightSpecs) light.set(spec.id, { spec, samplesKb: [] });
for (let round = 1; round <= LIGHT_ROUNDS; round++) {
  for (const spec of round % 2 === 1 ? lightSpecs : [...lightSpecs].reverse()) {
    const result = light.get(spec.id);
    let running;
    try {
      const countDir = join(tmpDir, `light-counts-${spec.id}-${round}`);
      mkdirSync(countDir);
      running = await spec.start({ port: await freePort(), countDir, tmpDir, tls });
      await sleep(IDLE_SETTLE_MS);
      await lightLoad(running.url);
      await sleep(IDLE_SETTLE_MS);
      const rssKb = meanWorkerRssKb(running.masterPid);
      if (rssKb !== undefined) result.samplesKb.push(rssKb);
    } catch (err) {
      result.error = err.message;
      failedRuns.push(`light load, ${spec.label}: ${err.message.split('\n', 1)[0]}`);
    } finally {
      await running?.stop();
    }
  }
}
for (const result of light.values()) result.lightWorkerRssKb = median(result.samplesKb);

/** Per mode the median of the passes' req/s (with that run's latency and spread); start-up samples from all. */
function combine(passes) {
  const failed = passes.find((p) => p.skipped || p.error);
  if (failed) return failed;
  const modes = Object.fromEntries(
    MODES.map((m) => {
      const byRps = passes.map((p) => p.modes[m]).sort((a, b) => a.rps - b.rps);
      return [m, { ...byRps[Math.floor((byRps.length - 1) / 2)], rps: median(byRps.map((r) => r.rps)), passes: byRps.length }];
    }),
  );
  return {
    ...passes[0],
    modes,
    readyMs: passes.flatMap((p) => p.readyMs),
    rssKb: median(passes.map((p) => p.rssKb)),
    idleWorkerRssKb: median(passes.map((p) => p.idleWorkerRssKb)),
    lightWorkerRssKb: median(passes.map((p) => p.lightWorkerRssKb)),
    lightWorkerRssSamplesKb: passes.map((p) => p.lightWorkerRssKb).filter((kb) => kb !== undefined),
    workerRssKb: median(passes.map((p) => p.workerRssKb)),
  };
}

// 3. HTTP/2 throughput: each pair in alternating passes, the median req/s per server.
/**
 * One start of an HTTP/2 server: a warm-up, then one measured h2load run, with the CPU time the server's processes
 * (schedstat, every thread) spent per response they counted meanwhile: unlike req/s, hardly moved by other load.
 */
async function measureHttp2(spec, pass) {
  let running;
  try {
    const countDir = join(tmpDir, `counts-${spec.id}-pass${pass}`);
    mkdirSync(countDir);
    running = await spec.start({ port: await freePort(), countDir, tmpDir, tls });
    await runH2load(running.url, { requests: H2LOAD_WARMUP_REQUESTS });
    await sleep(COUNT_SETTLE_MS);
    const [countsBefore, cpuBefore] = [readCounts(countDir, [running.masterPid]), treeCpu(running.masterPid)];
    const outcome = await runH2load(running.url, { durationS });
    await sleep(COUNT_SETTLE_MS);
    const cpuAfter = treeCpu(running.masterPid);
    const served = spreadBetween(countsBefore, readCounts(countDir, [running.masterPid])).total;
    const cpuNs = cpuAfter.master + cpuAfter.workers - cpuBefore.master - cpuBefore.workers;
    outcome.cpuUs = cpuNs / 1000 / served;
    console.error(
      `bench: ${spec.label}: ${Math.round(outcome.rps)} req/s, ${outcome.cpuUs.toFixed(1)} µs CPU per request, ${outcome.errors} errors`,
    );
    return outcome;
  } catch (err) {
    console.error(`bench: ${spec.label} failed: ${err.message.split('\n', 1)[0]}`);
    return { error: `${err.message}${running ? `\n--- server output ---\n${running.output()}` : ''}` };
  } finally {
    await running?.stop();
  }
}
for (const pair of http2Servers().filter((p) => wanted(p.bare) || wanted(p.tsg))) {
  const passes = { bare: [], tsg: [] };
  for (let pass = 1; pass <= HTTP2_PASSES; pass++) {
    for (const side of pass % 2 === 1 ? ['bare', 'tsg'] : ['tsg', 'bare']) passes[side].push(await measureHttp2(pair[side], pass));
  }
  const combined = (side) => {
    const spec = pair[side];
    const failed = passes[side].find((p) => p.error);
    if (failed) {
      failedRuns.push(`HTTP/2, ${spec.label}: ${failed.error.split('\n', 1)[0]}`);
      return { spec, error: failed.error };
    }
    const byRps = [...passes[side]].sort((a, b) => a.rps - b.rps);
    const middle = byRps[Math.floor((byRps.length - 1) / 2)];
    const medians = { rps: median(byRps.map((r) => r.rps)), cpuUs: median(byRps.map((r) => r.cpuUs)) };
    return { spec, passes: byRps.length, modes: { h2load: { ...middle, ...medians } } };
  };
  http2.push({ protocol: pair.protocol, bare: combined('bare'), tsg: combined('tsg') });
}

// 5. The compared pairs side by side: tsgunicorn -w 2 and its peer driven at the same time, so that the machine's
// speed, which moves from second to second, is the same for both.
async function sideContext(spec) {
  const countDir = mkdtempSync(join(tmpDir, `side-counts-${spec.id}-`));
  return { port: await freePort(), countDir, tmpDir, tls, gunicorn: tools.gunicorn };
}
const log = (line) => console.error(line);
const anchorPair = ['tsg', 'cluster-none'].map((id) => specs.find((spec) => spec.id === id));
if (anchorPair.every(Boolean)) {
  const measured = await throughputSideBySide(anchorPair, {
    starts: SIDE_BY_SIDE_STARTS,
    passes: SIDE_BY_SIDE_PASSES,
    modes: MODES,
    startContext: sideContext,
    warmUp: (running) => runWrk(running.url, { durationS: WARMUP_S, close: false }),
    load: (running, mode) => runWrk(running.url, { durationS, close: mode === 'close' }),
    log,
  });
  sideBySide.push({ protocol: 'HTTP/1.1', ...measured });
}
for (const pair of http2Servers().filter((p) => wanted(p.bare) || wanted(p.tsg))) {
  const measured = await throughputSideBySide([pair.tsg, pair.bare], {
    starts: SIDE_BY_SIDE_STARTS,
    passes: SIDE_BY_SIDE_PASSES,
    modes: ['h2load'],
    startContext: sideContext,
    warmUp: (running) => runH2load(running.url, { requests: H2LOAD_WARMUP_REQUESTS }),
    load: (running) => runH2load(running.url, { durationS }),
    log,
  });
  sideBySide.push({ protocol: pair.protocol, ...measured });
}
for (const pair of sideBySide) if (pair.error) failedRuns.push(`side by side, ${pair.protocol}: ${pair.error.split('\n', 1)[0]}`);

/** Prints the report (and writes it to BENCH_OUT), from what was measured; `note` heads a partial one. */
function writeReport(note) {
  const results = new Map([...runs].filter(([, passes]) => passes.length > 0).map(([id, passes]) => [id, combine(passes)]));
  const elapsedS = (performance.now() - startedAt) / 1000;
  const report = renderReport({
    machine,
    durationS,
    cpuDurationS,
    cpuStarts: CPU_STARTS,
    cpuRounds: CPU_ROUNDS,
    cpu,
    results,
    light,
    http2,
    sideBySide,
    elapsedS,
    note,
  });
  process.stdout.write(report);
  if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, report);
}

writeReport();
if (failedRuns.length > 0) console.error(`bench: failed runs:\n${failedRuns.join('\n')}`);
process.exitCode = failedRuns.length > 0 ? 1 : 0;
