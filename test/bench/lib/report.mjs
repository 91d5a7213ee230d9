// Renders one bench run as markdown: machine, throughput, startup/memory, targets.
import { WRK_CONNECTIONS, WRK_THREADS } from './wrk.mjs';
import { MODES, MODE_LABEL, evaluateTargets, median, ratio } from './targets.mjs';

const table = (header, rows) =>
  [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');

const measured = (result) => result && !result.skipped && !result.error;
const ms = (x) => (x < 10 ? x.toFixed(2) : x.toFixed(1)) + ' ms';
const mb = (kb) => (kb === undefined ? 'n/a' : `${(kb / 1024).toFixed(1)} MB`);

function spreadText(result, spread) {
  if (result.spec.workers < 2) return 'one process';
  if (!spread || spread.total === 0) return 'no counts';
  const shares = spread.perWorker.map((n) => `${((100 * n) / spread.total).toFixed(0)}%`).join(' / ');
  return `${shares} (max ${spread.maxOverMean.toFixed(2)}× mean)`;
}

function throughputRows(results) {
  const baseline = results.get('cluster-none');
  const rows = [];
  for (const result of results.values()) {
    const why = result.skipped ?? (result.error ? 'failed (see below)' : undefined);
    for (const mode of MODES) {
      if (why) {
        rows.push([result.spec.label, MODE_LABEL[mode], why, '', '', '', '', '']);
        continue;
      }
      const m = result.modes[mode];
      const base = measured(baseline) ? baseline.modes[mode] : undefined;
      rows.push([
        result.spec.label,
        MODE_LABEL[mode],
        Math.round(m.rps).toLocaleString('en-US'),
        base ? `${ratio(m.rps, base.rps).toFixed(2)}×` : 'n/a',
        ms(m.p50Ms),
        ms(m.p99Ms),
        m.errors === 0 ? '0' : `${m.errors} (${m.errorDetail})`,
        spreadText(result, m.spread),
      ]);
    }
  }
  return rows;
}

function startupRows(results) {
  return [...results.values()]
    .filter(measured)
    .map((r) => [
      r.spec.label,
      String(r.spec.workers),
      r.readyMs.length > 1 ? `${Math.round(median(r.readyMs))} ms (median of ${r.readyMs.length})` : `${Math.round(r.readyMs[0])} ms`,
      mb(r.rssKb),
      mb(r.idleWorkerRssKb),
      mb(r.workerRssKb),
    ]);
}

function otherComparisons(results) {
  const tsg = results.get('tsg');
  const lines = [];
  const cost = (id, what) => {
    const other = results.get(id);
    if (!measured(tsg) || !measured(other)) return;
    const parts = MODES.map((mode) => `${ratio(other.modes[mode].rps, tsg.modes[mode].rps).toFixed(2)}× (${MODE_LABEL[mode]})`);
    lines.push(`- ${what}: ${parts.join(', ')} the throughput of tsgunicorn -w 2 without it.`);
  };
  cost('tsg-logfile', 'Access log to a file');
  cost('tsg-tls', 'TLS');
  if (results.get('tsg-journal')?.skipped) {
    lines.push(
      `- Access log to the journal: ${results.get('tsg-journal').skipped}. On a host booted with systemd the bench ` +
        'starts tsgunicorn with `--access-logfile -` in a transient service (systemd-run), whose stderr is the journal ' +
        'stream; elsewhere, as root, it measures the installed package in a booted systemd container.',
    );
  }
  return lines;
}

export function renderReport({ machine, durationS, results, elapsedS }) {
  const failures = [...results.values()].filter((r) => r.error);
  return [
    '# tsgunicorn benchmark',
    '',
    `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.kernel}; ` +
      `node ${machine.node}; ${machine.wrk}; ${machine.gunicorn}; ${machine.date}; ` +
      `1-minute load average at start ${machine.loadAtStart.toFixed(2)}.`,
    ...(machine.loadAtStart > machine.cores / 4
      ? [
          '',
          `**Warning:** the machine was busy when the bench started (load ${machine.loadAtStart.toFixed(2)} on ${machine.cores} cores): other work competes with the servers and wrk, so the numbers are unreliable.`,
        ]
      : []),
    '',
    `Load: \`wrk -t${WRK_THREADS} -c${WRK_CONNECTIONS} -d${durationS}s --latency\` on 127.0.0.1, two passes (the second in reverse order), ` +
      `the better run per server and mode kept, each after a 1 s keep-alive warm-up; "Connection: close" adds \`-H 'Connection: close'\`. ` +
      `Every server answers GET / with "Hello, World!\\n". Errors = non-2xx + socket errors. Spread = responses per worker ` +
      `process during that run, busiest first. Whole run: ${elapsedS.toFixed(0)} s.`,
    '',
    '## Throughput',
    '',
    table(['Server', 'Mode', 'req/s', '× SCHED_NONE', 'p50', 'p99', 'errors', 'spread over workers'], throughputRows(results)),
    '',
    '## Startup and memory',
    '',
    table(
      ['Server', 'workers', 'spawn → first 200', 'master RSS after load', 'worker RSS idle (mean)', 'worker RSS after load (mean)'],
      startupRows(results),
    ),
    '',
    '## Targets',
    '',
    table(
      ['Target', 'Measured', 'Status'],
      evaluateTargets(results).map((r) => [r.target, r.measured, r.status]),
    ),
    '',
    ...otherComparisons(results),
    ...(failures.length ? ['', '## Failures', '', ...failures.map((r) => `### ${r.spec.label}\n\n\`\`\`\n${r.error.trim()}\n\`\`\``)] : []),
    '',
  ].join('\n');
}
