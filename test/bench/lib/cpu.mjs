// CPU time per request, the bench's measure of what a server costs. Throughput on a shared 2-core machine
// scatters by tens of percent from run to run; CPU time per request over a fixed load much less, when it is read
// from /proc/PID/task/TID/schedstat: its first field is the nanoseconds the scheduler ran that thread, exact.
// utime/stime (/proc/PID/stat) are sampled at each clock tick instead, and under-count a busy worker that
// sleeps between small bursts of work by almost half here. What is left is the machine's speed, which moves from
// second to second; so a row and its twin are measured at the same time (cpuPerRequestTogether).
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { descendants } from './processes.mjs';
import { H2LOAD_WARMUP_REQUESTS, runH2load } from './h2load.mjs';
import { CPU_ROWS, median, modesOf } from './targets.mjs';
import { runWrk } from './wrk.mjs';

// The servers run on one CPU and their loads on the other, so that a load generator never takes a server's time.
export const SERVER_CPU = availableParallelism() >= 2 ? 0 : undefined;
export const WRK_CPU = availableParallelism() >= 2 ? 1 : undefined;
// A server finishes the requests wrk left in flight before its CPU time is read.
const SETTLE_MS = 200;

/** Nanoseconds the scheduler ran every thread of the process (0 once it is gone). */
export function cpuNs(pid) {
  let ns = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ', 1)[0]);
      } catch {
        // the thread ended while listing
      }
    }
  } catch {
    // the process is gone
  }
  return ns;
}

/** CPU nanoseconds of a server's process tree: its master (or only process) and its workers, apart. */
export function treeCpu(masterPid) {
  return { master: cpuNs(masterPid), workers: descendants(masterPid).reduce((sum, pid) => sum + cpuNs(pid), 0) };
}

/** One load on a running server: wrk for durationS seconds, or h2load for as long, pinned to WRK_CPU. */
function runLoad(running, { durationS, close, proxyV2, h2load }) {
  return h2load ? runH2load(running.url, { durationS, cpu: WRK_CPU }) : runWrk(running.url, { durationS, close, cpu: WRK_CPU, proxyV2 });
}

/**
 * The same fixed load on running servers at once (a row and its twin), each driven by its own wrk (or h2load): per
 * server its requests, and the CPU time per request in µs of the master and of the workers. For a single process,
 * the process is the "workers" figure (it serves) and the master figure is 0. At once, because this machine's CPU
 * speed swings by ±20 % from second to second (a VM: a fixed compute loop here takes 407 ms one second, 606 ms
 * another): measured one after the other, two identical servers differ by as much; side by side on one CPU, by
 * 1–3 %. With `reversed`, the last load starts first.
 */
export async function cpuPerRequestTogether(measured, reversed = false) {
  const before = measured.map(({ running }) => treeCpu(running.masterPid));
  const loads = [];
  const order = [...measured.keys()];
  for (const i of reversed ? order.reverse() : order) loads[i] = runLoad(measured[i].running, measured[i].load);
  const outcomes = await Promise.all(loads);
  await sleep(SETTLE_MS);
  return measured.map(({ running }, i) => {
    const after = treeCpu(running.masterPid);
    const us = (ns) => ns / 1000 / outcomes[i].requests;
    const master = us(after.master - before[i].master);
    const workers = us(after.workers - before[i].workers);
    const workersOf = descendants(running.masterPid).length > 0;
    return { ...outcomes[i], workersUs: workersOf ? workers : master, masterUs: workersOf ? master : 0 };
  });
}

/**
 * A row's figures in one mode from its rounds: the medians, each round's CPU µs per request (totalUs), the errors,
 * and when it was measured beside a twin, each round's ratio to the twin measured at the same time (twinRatios)
 * and their median (vsTwin).
 */
export function summarize(samples, totalUs) {
  const of = (f) => median(samples.map(f));
  const twinRatios = samples.map((x) => x.twinRatio).filter((r) => r !== undefined);
  return {
    us: of(totalUs),
    workersUs: of((x) => x.workersUs),
    masterUs: of((x) => x.masterUs),
    rps: of((x) => x.rps),
    p50Ms: of((x) => x.p50Ms),
    p99Ms: of((x) => x.p99Ms),
    roundsUs: samples.map(totalUs),
    ...(twinRatios.length > 0 ? { twinRatios, vsTwin: median(twinRatios) } : {}),
    errors: samples.reduce((sum, x) => sum + x.errors, 0),
    errorDetail: samples
      .map((x) => x.errorDetail)
      .filter(Boolean)
      .join('; '),
  };
}

const totalUs = (x) => x.workersUs + x.masterUs;

/**
 * Measures each group's servers: every server of a group is started pinned and warmed up, then each row of
 * CPU_ROWS in the group is measured at the same time as its twin, `rounds` times per mode (every other round the
 * pairs in reverse order, the row's load started first); all of that `starts` times, on servers started afresh
 * each time. Afresh, because two processes of the same server can differ by 20 % in CPU per request for as long
 * as they run: what V8 compiled for each (two identical bare servers measured 0.78–0.80× each other, round
 * after round; perf showed one building an object of Node's per-request path the slow way). Per server and
 * mode: the medians over its samples of the CPU µs per request (whole tree, workers, master), of req/s and of
 * p50/p99, every sample's figure, and for a row, every round's ratio to its twin.
 */
export async function measureCpuGroups(groups, { starts, rounds, durationS, warmupS, modes, startContext, log }) {
  const results = new Map();
  for (const group of groups) {
    const specModes = (spec) => (spec.h2load ? modesOf(spec) : modes);
    const byId = new Map(group.map((spec) => [spec.id, spec]));
    // Each row beside its twin; a server of neither (BENCH_ONLY left its partner out) alone.
    const pairs = CPU_ROWS.filter((row) => byId.has(row.id) && byId.has(row.twin)).map((row) => [byId.get(row.twin), byId.get(row.id)]);
    const paired = new Set(pairs.flat());
    const sets = [...pairs, ...group.filter((spec) => !paired.has(spec)).map((spec) => [spec])];
    const samples = new Map(group.map((spec) => [spec.id, Object.fromEntries(specModes(spec).map((m) => [m, []]))]));
    try {
      for (let start = 0; start < starts; start++) {
        const running = new Map();
        try {
          for (const spec of group) {
            const server = await spec.start(await startContext(spec));
            running.set(spec.id, server);
            // Every mode, so that the code each one runs is compiled before it is measured.
            if (spec.h2load) await runH2load(server.url, { requests: H2LOAD_WARMUP_REQUESTS, cpu: WRK_CPU });
            else
              for (const mode of modes)
                await runWrk(server.url, { durationS: warmupS, close: mode === 'close', cpu: WRK_CPU, proxyV2: spec.proxyV2 });
          }
          for (let round = 0; round < rounds; round++) {
            for (const set of round % 2 === 0 ? sets : [...sets].reverse()) {
              for (const mode of specModes(set.at(-1))) {
                const measured = set.map((spec) => ({
                  running: running.get(spec.id),
                  load: { durationS, close: mode === 'close', proxyV2: spec.proxyV2, h2load: spec.h2load },
                }));
                // Errors (a wrk timeout on a loaded machine) are reported with the row, not dropped.
                const figures = await cpuPerRequestTogether(measured, round % 2 === 1);
                if (set.length === 1) samples.get(set[0].id)[mode].push(figures[0]);
                else {
                  const [twin, own] = figures;
                  samples.get(set[0].id)[mode].push(twin);
                  samples.get(set[1].id)[mode].push({ ...own, twinRatio: totalUs(own) / totalUs(twin) });
                }
              }
            }
            log(`bench: CPU start ${start + 1}/${starts}, round ${round + 1}/${rounds}: ${group.map((s) => s.id).join(', ')}`);
          }
        } finally {
          for (const server of running.values()) await server.stop();
        }
      }
      for (const spec of group) {
        const modesOut = {};
        for (const mode of specModes(spec)) modesOut[mode] = summarize(samples.get(spec.id)[mode], totalUs);
        results.set(spec.id, { spec, modes: modesOut });
      }
    } catch (err) {
      for (const spec of group) if (!results.has(spec.id)) results.set(spec.id, { spec, error: err.message });
      log(`bench: CPU group ${group.map((s) => s.id).join(', ')} failed: ${err.message.split('\n', 1)[0]}`);
    }
  }
  return results;
}
