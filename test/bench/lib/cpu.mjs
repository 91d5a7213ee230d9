// CPU time per request, the bench's measure of what a server costs. Throughput on a shared 2-core machine
// scatters by tens of percent from run to run; CPU time per request over a fixed load does not, when it is read
// from /proc/PID/task/TID/schedstat: its first field is the nanoseconds the scheduler ran that thread, exact.
// utime/stime (/proc/PID/stat) are sampled at each clock tick instead, and under-count a busy worker that
// sleeps between small bursts of work by almost half here.
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { descendants } from './processes.mjs';
import { H2LOAD_WARMUP_REQUESTS, runH2load } from './h2load.mjs';
import { median, modesOf } from './targets.mjs';
import { runWrk } from './wrk.mjs';

// The server runs on one CPU and wrk on the other, so neither steals the other's time or caches.
export const SERVER_CPU = availableParallelism() >= 2 ? 0 : undefined;
export const WRK_CPU = availableParallelism() >= 2 ? 1 : undefined;
// A server finishes the requests wrk left in flight before its CPU time is read.
const SETTLE_MS = 200;
// h2load runs a count of requests (lib/h2load.mjs says why), about this many per second of a round.
const H2LOAD_REQUESTS_PER_S = 10_000;

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

/**
 * One fixed load (wrk for durationS seconds, pinned) on a running server: its requests, and the CPU time per
 * request in µs of the master and of the workers. For a single process, the process is the "workers" figure
 * (it serves) and the master figure is 0.
 */
export async function cpuPerRequest(running, { durationS, close, proxyV2, h2load }) {
  const workersOf = descendants(running.masterPid).length > 0;
  const before = treeCpu(running.masterPid);
  const outcome = h2load
    ? await runH2load(running.url, { requests: H2LOAD_REQUESTS_PER_S * durationS, cpu: WRK_CPU })
    : await runWrk(running.url, { durationS, close, cpu: WRK_CPU, proxyV2 });
  await sleep(SETTLE_MS);
  const after = treeCpu(running.masterPid);
  const us = (ns) => ns / 1000 / outcome.requests;
  const master = us(after.master - before.master);
  const workers = us(after.workers - before.workers);
  return { ...outcome, workersUs: workersOf ? workers : master, masterUs: workersOf ? master : 0 };
}

/** A row's figures in one mode from its rounds: the medians, each round's CPU µs per request (totalUs), the errors. */
export function summarize(samples, totalUs) {
  const of = (f) => median(samples.map(f));
  return {
    us: of(totalUs),
    workersUs: of((x) => x.workersUs),
    masterUs: of((x) => x.masterUs),
    rps: of((x) => x.rps),
    p50Ms: of((x) => x.p50Ms),
    p99Ms: of((x) => x.p99Ms),
    roundsUs: samples.map(totalUs),
    errors: samples.reduce((sum, x) => sum + x.errors, 0),
    errorDetail: samples
      .map((x) => x.errorDetail)
      .filter(Boolean)
      .join('; '),
  };
}

/**
 * Measures each group's servers in alternating rounds (forward, then backward): every server of a group is
 * started pinned, warmed up, then given `rounds` loads per mode. Per server and mode: the medians over rounds
 * of the CPU µs per request (whole tree, workers, master), of req/s and of p50/p99, and every round's figure.
 */
export async function measureCpuGroups(groups, { rounds, durationS, warmupS, modes, startContext, log }) {
  const results = new Map();
  for (const group of groups) {
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
      const specModes = (spec) => (spec.h2load ? modesOf(spec) : modes);
      const rounds_ = new Map(group.map((spec) => [spec.id, Object.fromEntries(specModes(spec).map((m) => [m, []]))]));
      for (let round = 0; round < rounds; round++) {
        for (const spec of round % 2 === 0 ? group : [...group].reverse()) {
          for (const mode of specModes(spec)) {
            // Errors (a wrk timeout on a loaded machine) are reported with the row, not dropped.
            const load = { durationS, close: mode === 'close', proxyV2: spec.proxyV2, h2load: spec.h2load };
            rounds_.get(spec.id)[mode].push(await cpuPerRequest(running.get(spec.id), load));
          }
        }
        log(`bench: CPU round ${round + 1}/${rounds}: ${group.map((s) => s.id).join(', ')}`);
      }
      for (const spec of group) {
        const modesOut = {};
        for (const mode of specModes(spec)) modesOut[mode] = summarize(rounds_.get(spec.id)[mode], (x) => x.workersUs + x.masterUs);
        results.set(spec.id, { spec, modes: modesOut });
      }
    } catch (err) {
      for (const spec of group) if (!results.has(spec.id)) results.set(spec.id, { spec, error: err.message });
      log(`bench: CPU group ${group.map((s) => s.id).join(', ')} failed: ${err.message.split('\n', 1)[0]}`);
    } finally {
      for (const server of running.values()) await server.stop();
    }
  }
  return results;
}
