// Reads the per-process response counts the bench apps write
// ($BENCH_COUNT_DIR/<pid>.count) and turns two snapshots into a spread.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Map of pid -> responses served so far, leaving out the given pids (a master that loaded the app). */
export function readCounts(dir, excludePids = []) {
  const counts = new Map();
  for (const name of readdirSync(dir)) {
    const match = /^(\d+)\.count$/.exec(name);
    if (!match || excludePids.includes(Number(match[1]))) continue;
    counts.set(Number(match[1]), Number(readFileSync(join(dir, name), 'utf8')));
  }
  return counts;
}

/**
 * Responses each worker served between two snapshots, largest first, and the
 * largest share relative to the mean share (1 = perfectly even).
 */
export function spreadBetween(before, after) {
  const perWorker = [...after].map(([pid, n]) => n - (before.get(pid) ?? 0)).sort((a, b) => b - a);
  const total = perWorker.reduce((a, b) => a + b, 0);
  const maxOverMean = total > 0 ? (perWorker[0] * perWorker.length) / total : undefined;
  return { perWorker, total, maxOverMean };
}
