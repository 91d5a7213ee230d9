// The journal access log's cost where the bench host has no journald: the
// installed package in a booted systemd container (the e2e harness's), the same
// instance measured without an access log and with `accesslog = -`, whose
// entries go to journald natively. The container shares the host's network, so
// wrk on the host drives the instance's socket on 127.0.0.1:8000.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitForHttp200 } from './processes.mjs';
import { ensurePackages } from './tools.mjs';
import { MODES } from './targets.mjs';
import { runWrk } from './wrk.mjs';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DEB = join(ROOT, 'dist/tsgunicorn.deb');
const URL_IN_CONTAINER = 'http://127.0.0.1:8000/';
// The bench's own hello world, as the other servers serve it (its response
// counter does nothing without BENCH_COUNT_DIR, which the instance does not get).
const APP_FILES = ['hello-listener.mjs', 'response-counter.mjs'];
const APPS = join(ROOT, 'test/bench/apps');

// /proc/PID/stat counts CPU time in clock ticks: 100 per second on Linux.
const US_PER_TICK = 10_000;

/** utime + stime of the processes (fields 14 and 15 of /proc/PID/stat), in clock ticks, read inside the container. */
async function cpuTicks(machine, pids) {
  let ticks = 0;
  for (const pid of pids) {
    const fields = (await machine.run(['cat', `/proc/${pid}/stat`])).replace(/^.*\) /s, '').split(' ');
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks;
}

/** The instance's worker PIDs and journald's, as the container sees them. */
async function servingPids(machine) {
  const main = (await machine.run(['systemctl', 'show', '-p', 'MainPID', '--value', 'tsgunicorn@bench.service'])).trim();
  const workers = (await machine.run(['pgrep', '-P', main])).trim().split('\n');
  const journald = (await machine.run(['pidof', 'systemd-journald'])).trim();
  return { workers, journald };
}

/** How many access entries (HTTP_STATUS=200) journald has stored for the instance. */
async function storedEntries(machine) {
  const out = await machine.run(['sh', '-c', 'journalctl -u tsgunicorn@bench.service HTTP_STATUS=200 -o cat --no-pager | wc -l']);
  return Number(out.trim());
}

/** storedEntries once journald has caught up: two counts half a second apart agree (10 s at most). */
async function settledEntries(machine) {
  let last = await storedEntries(machine);
  for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const now = await storedEntries(machine);
    if (now === last) break;
    last = now;
  }
  return last;
}

// The container (debootstrap, systemd-nspawn, nsenter) and the package of the
// code just built with its native addons (packaging/build-deb.sh's needs).
const PACKAGES = ['debootstrap', 'systemd-container', 'util-linux', 'dpkg-dev', 'binutils', 'g++', 'make', 'libsystemd-dev'];

/** Why it cannot run here, or undefined when it can; installs what it needs when missing. */
function unavailable() {
  if (process.getuid?.() !== 0) return 'n/a (needs root for a systemd container)';
  const missing = ensurePackages(PACKAGES);
  return missing.length > 0 ? `n/a (apt-get install ${missing.join(' ')} failed)` : undefined;
}

/**
 * Two bench results, ids 'tsg-container' (no access log) and 'tsg-journal'
 * (access log to the journal), each { spec, readyMs, modes }; or one skipped result.
 */
export async function measureJournalInContainer({ durationS, warmupS }) {
  const spec = (id, label) => ({ id, label, workers: 2 });
  const base = spec('tsg-container', 'tsgunicorn -w 2 in a systemd container, no access log');
  const journal = spec('tsg-journal', 'tsgunicorn -w 2 in a systemd container, access log to journal');
  const why = unavailable();
  if (why) return [{ spec: journal, skipped: why }];
  // The package of the code just built (npm run bench builds first), not a stale one.
  const built = spawnSync('bash', [join(ROOT, 'packaging/build-deb.sh')], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  if (built.status !== 0 || !existsSync(DEB)) return [{ spec: journal, error: 'packaging/build-deb.sh failed' }];
  const { boot } = await import('../../e2e/harness.ts');
  const machine = await boot('bookworm', { deb: DEB });
  try {
    for (const file of APP_FILES) await machine.writeFile(`/srv/bench/${file}`, readFileSync(join(APPS, file), 'utf8'));
    const results = [];
    for (const [result, accesslog] of [
      [base, ''],
      [journal, 'accesslog = -\n'],
    ]) {
      await machine.writeFile('/etc/tsgunicorn/bench.ini', `app = /srv/bench/hello-listener.mjs\nworkers = 2\n${accesslog}`);
      await machine.run(['systemctl', 'daemon-reload']);
      const startedAt = performance.now();
      await machine.run(['systemctl', 'restart', 'tsgunicorn@bench.service']);
      const readyMs = await waitForHttp200(URL_IN_CONTAINER, { startedAt });
      await runWrk(URL_IN_CONTAINER, { durationS: warmupS, close: false });
      const { workers, journald } = await servingPids(machine);
      const modes = {};
      let stored = accesslog ? await settledEntries(machine) : 0;
      for (const mode of MODES) {
        const before = [await cpuTicks(machine, workers), await cpuTicks(machine, [journald])];
        const run = await runWrk(URL_IN_CONTAINER, { durationS, close: mode === 'close' });
        const after = [await cpuTicks(machine, workers), await cpuTicks(machine, [journald])];
        // CPU per request, where the time of a journal entry goes: the workers' own and journald's.
        const perRequest = (i) => ((after[i] - before[i]) * US_PER_TICK) / run.requests;
        modes[mode] = { ...run, cpuUs: { workers: perRequest(0), journald: perRequest(1) } };
        // A run whose entries journald dropped (its rate limit) measured less than the full cost.
        if (accesslog) {
          const storedAfter = await settledEntries(machine);
          modes[mode].journalStored = storedAfter - stored;
          stored = storedAfter;
        }
      }
      results.push({ spec: result, readyMs: [readyMs], modes });
      console.error(`bench: ${result.label}: ${MODES.map((m) => Math.round(modes[m].rps)).join(' / ')} req/s`);
    }
    return results;
  } finally {
    await machine.stop();
  }
}
