// The journal access log's cost: the installed package in a booted systemd
// container (the e2e harness's), two instances of the same app, one without an
// access log and one with `accesslog = -`, whose entries go to journald natively.
// The container shares the host's network, so wrk on the host drives the
// instances' sockets on two free ports of 127.0.0.1.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitForHttp200 } from './processes.mjs';
import { ensurePackages } from './tools.mjs';
import { SERVER_CPU, summarize, WRK_CPU } from './cpu.mjs';
import { MODES, median } from './targets.mjs';
import { runWrk } from './wrk.mjs';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DEB = join(ROOT, 'dist/tsgunicorn.deb');
// The bench's own hello world, as the other servers serve it (its response
// counter does nothing without BENCH_COUNT_DIR, which the instances do not get).
const APP_FILES = ['hello-listener.mjs', 'response-counter.mjs'];
const APPS = join(ROOT, 'test/bench/apps');
const BASE = 'tsgunicorn@bench.service';
const JOURNAL = 'tsgunicorn@benchlog.service';

/** Nanoseconds every thread of each process ran (schedstat, as lib/cpu.mjs reads it), read inside the container. */
async function cpuNs(machine, pids) {
  const out = await machine.run(['sh', '-c', pids.map((pid) => `cat /proc/${pid}/task/*/schedstat`).join('; ')]);
  return out
    .trim()
    .split('\n')
    .reduce((sum, line) => sum + Number(line.split(' ', 1)[0]), 0);
}

/** An instance's master and worker PIDs and journald's, as the container sees them. */
async function servingPids(machine, unit) {
  const master = (await machine.run(['systemctl', 'show', '-p', 'MainPID', '--value', unit])).trim();
  const workers = (await machine.run(['pgrep', '-P', master])).trim().split('\n');
  const journald = (await machine.run(['pidof', 'systemd-journald'])).trim();
  return { master: [master], workers, journald: [journald] };
}

/** How many access entries (HTTP_STATUS=200) journald has stored for the instance. */
async function storedEntries(machine) {
  const out = await machine.run(['sh', '-c', `journalctl -u ${JOURNAL} HTTP_STATUS=200 -o cat --no-pager | wc -l`]);
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
 * The CPU-per-request rows of the journal access log: the installed package's instance with `accesslog = -`
 * and the same instance without an access log, both -w 1, side by side in one booted container and measured at
 * the same time like lib/cpu.mjs's pairs: each instance and journald pinned to SERVER_CPU, wrk to the other. Per row and mode the medians of the CPU µs per request of the workers, the master and journald (journald
 * stores the entries, so its time is part of the log's cost), and the entries journald stored against the
 * requests wrk counted. Returns results with ids 'tsg-container' and 'tsg-journal', or one skipped or failed.
 */
export async function measureJournalInContainer({ rounds, durationS, warmupS, ports }) {
  const spec = (id, label) => ({ id, label });
  const base = spec('tsg-container', 'tsgunicorn -w 1 in a systemd container, no access log');
  const journal = spec('tsg-journal', 'tsgunicorn -w 1 in a systemd container, access log to the journal');
  const why = unavailable();
  if (why) return [{ spec: journal, skipped: why }];
  // The package of the code just built (npm run bench builds first), not a stale one.
  const built = spawnSync('bash', [join(ROOT, 'packaging/build-deb.sh')], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  if (built.status !== 0 || !existsSync(DEB)) return [{ spec: journal, error: 'packaging/build-deb.sh failed' }];
  const { boot } = await import('../../e2e/harness.ts');
  const machine = await boot('bookworm', { deb: DEB });
  try {
    for (const file of APP_FILES) await machine.writeFile(`/srv/bench/${file}`, readFileSync(join(APPS, file), 'utf8'));
    await machine.run(['ln', '-sfn', '/srv/bench', '/srv/benchlog']);
    const instances = [
      { spec: base, unit: BASE, url: `http://127.0.0.1:${ports[0]}/` },
      { spec: journal, unit: JOURNAL, url: `http://127.0.0.1:${ports[1]}/` },
    ];
    for (const [i, { unit }] of instances.entries()) {
      const name = unit.slice('tsgunicorn@'.length, -'.service'.length);
      const accesslog = unit === JOURNAL ? 'accesslog = -\n' : '';
      await machine.writeFile(
        `/etc/tsgunicorn/${name}.ini`,
        `app = /srv/bench/hello-listener.mjs\nworkers = 1\nbind = 127.0.0.1:${ports[i]}\n${accesslog}`,
      );
    }
    await machine.run(['systemctl', 'daemon-reload']);
    const journaldPid = (await machine.run(['pidof', 'systemd-journald'])).trim();
    for (const instance of instances) {
      const startedAt = performance.now();
      await machine.run(['systemctl', 'restart', instance.unit]);
      instance.readyMs = await waitForHttp200(instance.url, { startedAt });
      instance.pids = await servingPids(machine, instance.unit);
      for (const pid of [...instance.pids.master, ...instance.pids.workers, journaldPid]) {
        if (SERVER_CPU !== undefined) await machine.run(['taskset', '-a', '-p', '-c', String(SERVER_CPU), pid]);
      }
      for (const mode of MODES) await runWrk(instance.url, { durationS: warmupS, close: mode === 'close', cpu: WRK_CPU });
      instance.samples = Object.fromEntries(MODES.map((mode) => [mode, []]));
    }
    let storedBefore = await settledEntries(machine);
    let requestsLogged = 0;
    const read = async () =>
      Promise.all([...instances.flatMap((i) => [i.pids.master, i.pids.workers]), [journaldPid]].map((pids) => cpuNs(machine, pids)));
    for (let round = 0; round < rounds; round++) {
      for (const mode of MODES) {
        // Both instances at once (lib/cpu.mjs's cpuPerRequestTogether says why); journald's time is the journal
        // instance's, the other one logs no request.
        const before = await read();
        const order = round % 2 === 0 ? instances : [...instances].reverse();
        const started = new Map(order.map((i) => [i, runWrk(i.url, { durationS, close: mode === 'close', cpu: WRK_CPU })]));
        const runs = await Promise.all(instances.map((i) => started.get(i)));
        await new Promise((resolve) => setTimeout(resolve, 200));
        const spent = (await read()).map((ns, i) => ns - before[i]);
        const figures = instances.map((instance, i) => {
          const us = (ns) => ns / 1000 / runs[i].requests;
          const journaldUs = instance.spec === journal ? us(spent[4]) : 0;
          return { ...runs[i], masterUs: us(spent[2 * i]), workersUs: us(spent[2 * i + 1]), journaldUs };
        });
        requestsLogged += runs[1].requests;
        const total = (x) => x.masterUs + x.workersUs + x.journaldUs;
        instances[0].samples[mode].push(figures[0]);
        instances[1].samples[mode].push({ ...figures[1], twinRatio: total(figures[1]) / total(figures[0]) });
      }
    }
    // Entries dropped on the way (journald's rate limit) would make the log look cheaper than it is.
    const stored = (await settledEntries(machine)) - storedBefore;
    return instances.map(({ spec: s, readyMs, samples }) => {
      const modes = {};
      for (const mode of MODES) {
        const total = (x) => x.masterUs + x.workersUs + x.journaldUs;
        modes[mode] = { ...summarize(samples[mode], total), journaldUs: median(samples[mode].map((x) => x.journaldUs)) };
      }
      return { spec: s, readyMs: [readyMs], modes, ...(s === journal ? { journalStored: stored, requests: requestsLogged } : {}) };
    });
  } finally {
    await machine.stop();
  }
}
