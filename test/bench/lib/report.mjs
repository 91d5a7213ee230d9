// Renders one bench run as markdown: machine, throughput, startup/memory, targets.
import { H2LOAD_CLIENTS, H2LOAD_STREAMS, H2LOAD_WARMUP_REQUESTS } from './h2load.mjs';
import { WRK_CONNECTIONS, WRK_THREADS } from './wrk.mjs';
import { CPU_ROWS, MODES, MODE_LABEL, cpuVersus, evaluateTargets, median, missing, modesOf, ratio } from './targets.mjs';

const table = (header, rows) =>
  [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');

const measured = (result) => result && !result.skipped && !result.error;
const ms = (x) => (x < 10 ? x.toFixed(2) : x.toFixed(1)) + ' ms';
const us = (x) => `${x.toFixed(1)} µs`;
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

/** The range of a median's samples, so the report shows how far one sample may be off. */
function samplesRange(samplesKb, unit) {
  if (samplesKb.length < 2) return '';
  const fixed = (kb) => (kb / 1024).toFixed(1);
  return ` (${fixed(Math.min(...samplesKb))}–${fixed(Math.max(...samplesKb))} in ${samplesKb.length} ${unit})`;
}

/** One row per server of the HTTP/2 pairs, each beside its bare peer. */
function http2Rows(http2) {
  return http2.flatMap(({ bare, tsg }) =>
    [bare, tsg].map((result) => {
      const why = missing(result);
      if (why) return [result.spec.label, why === 'failed to run' ? 'failed (see below)' : why, '', '', '', '', ''];
      const m = result.modes.h2load;
      return [
        result.spec.label,
        Math.round(m.rps).toLocaleString('en-US'),
        missing(bare) ? 'n/a' : `${ratio(m.rps, bare.modes.h2load.rps).toFixed(2)}×`,
        `${m.cpuUs.toFixed(1)} µs`,
        missing(bare) ? 'n/a' : `${ratio(m.cpuUs, bare.modes.h2load.cpuUs).toFixed(2)}×`,
        ms(m.meanMs),
        m.errors === 0 ? '0' : `${m.errors} (${m.errorDetail})`,
      ];
    }),
  );
}

/** One row per pair and mode driven side by side: each server's median req/s, the median ratio and every pass's. */
function sideBySideRows(sideBySide) {
  return sideBySide.flatMap((pair) => {
    const name = `${pair.specs[0].label} / ${pair.specs[1].label}`;
    if (pair.error) return [[name, '', 'failed (see below)', '', '', '']];
    return Object.entries(pair.modes).map(([mode, m]) => [
      name,
      MODE_LABEL[mode],
      m.rps.map((x) => Math.round(x).toLocaleString('en-US')).join(' / '),
      `${m.ratio.toFixed(3)}×`,
      m.ratios.map((r) => r.toFixed(3)).join(', '),
      m.errors.length ? m.errors.join('; ') : '0',
    ]);
  });
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
      r.lightWorkerRssKb === undefined ? '' : `${mb(r.lightWorkerRssKb)}${samplesRange(r.lightWorkerRssSamplesKb, 'passes')}`,
      mb(r.workerRssKb),
    ]);
}

/** One row per server and mode of the CPU table: µs per request (whole tree, workers, master), its ratios, the noisy columns. */
function cpuRows(cpu) {
  const rows = [];
  const seen = new Set();
  const describe = (id, twinId, plainId) => {
    const result = cpu.get(id);
    if (!result || seen.has(id)) return;
    seen.add(id);
    const twin = cpu.get(twinId);
    const plain = cpu.get(plainId);
    for (const mode of modesOf(result.spec)) {
      const why = missing(result);
      if (why) {
        rows.push([result.spec.label, MODE_LABEL[mode], why, '', '', '', '', '', '', '']);
        continue;
      }
      const m = result.modes[mode];
      const versus = (other) => {
        const found = other && !missing(other) ? cpuVersus(result, other, mode) : undefined;
        return found ? `${found.ratio.toFixed(3)}×` : '';
      };
      const parts = [
        `workers ${us(m.workersUs)}`,
        ...(m.masterUs ? [`master ${us(m.masterUs)}`] : []),
        ...(m.journaldUs ? [`journald ${us(m.journaldUs)}`] : []),
      ];
      rows.push([
        result.spec.label,
        MODE_LABEL[mode],
        `${us(m.us)} (${m.roundsUs.map((x) => x.toFixed(1)).join(', ')})`,
        parts.join(', '),
        twinId
          ? `${versus(twin)} ${twin?.spec.label ?? twinId}${m.twinRatios ? ` (${m.twinRatios.map((r) => r.toFixed(3)).join(', ')})` : ''}`
          : '(twin)',
        plainId ? versus(plain) : '',
        Math.round(m.rps).toLocaleString('en-US'),
        // h2load reports no percentiles.
        m.p50Ms === undefined ? 'n/a' : ms(m.p50Ms),
        m.p99Ms === undefined ? 'n/a' : ms(m.p99Ms),
        m.errors ? `${m.errors} (${m.errorDetail})` : '0',
      ]);
    }
  };
  for (const { id, twin, plain } of CPU_ROWS) {
    describe(twin);
    describe(id, twin, plain);
  }
  return rows;
}

function journalNote(cpu) {
  const journal = cpu.get('tsg-journal');
  if (!journal || missing(journal)) return journal?.skipped ? [`- Access log to the journal: ${journal.skipped}.`] : [];
  return [
    `- Access log to the journal: journald stored ${journal.journalStored.toLocaleString('en-US')} entries for the ` +
      `${journal.requests.toLocaleString('en-US')} requests wrk counted (a few more are answered after wrk stops counting).`,
  ];
}

export function renderReport({
  machine,
  durationS,
  cpuDurationS,
  cpuStarts,
  cpuRounds,
  cpu,
  results,
  light,
  http2,
  sideBySide = [],
  elapsedS,
  note,
}) {
  const failures = [
    ...results.values(),
    ...cpu.values(),
    ...light.values(),
    ...http2.flatMap((p) => [p.bare, p.tsg]),
    ...sideBySide.map((p) => ({ ...p, spec: { label: `side by side, ${p.protocol}` } })),
  ].filter((r) => r.error);
  return [
    '# tsgunicorn benchmark',
    '',
    ...(note ? [note, ''] : []),
    `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.kernel}; ` +
      `node ${machine.node}; ${machine.wrk}; ${machine.gunicorn}; ${machine.date}; ` +
      `1-minute load average at start ${machine.loadAtStart.toFixed(2)}. Whole run: ${elapsedS.toFixed(0)} s.`,
    ...(machine.loadAtStart > machine.cores / 4
      ? [
          '',
          `**Warning:** the machine was busy when the bench started (load ${machine.loadAtStart.toFixed(2)} on ${machine.cores} cores): other work competes with the servers and wrk, so the numbers are unreliable.`,
        ]
      : []),
    '',
    '## CPU time per request',
    '',
    `Each server is one process serving (tsgunicorn -w 1, or bare node). Each row is measured **at the same time as its twin**: ` +
      `both pinned to one CPU with taskset, each driven by its own wrk (\`-t${WRK_THREADS} -c${WRK_CONNECTIONS}\`, ${cpuDurationS} s) pinned to the other, ` +
      `because a virtual machine's speed can move by tens of percent from second to second and would otherwise decide the ratio. ${cpuRounds} rounds per row and mode ` +
      `(every other round the pairs in reverse order and the row's load started first), after a 1 s warm-up in each mode, ` +
      `on each of ${cpuStarts} fresh starts of the servers (two processes of one server can differ by 20 % for as long as they run, with what V8 compiled for each). ` +
      `CPU = the nanoseconds every thread of the server's processes ran (first field of /proc/PID/task/TID/schedstat, ` +
      `master and workers apart) over that load, divided by the requests wrk counted; the median of the samples, every sample in brackets. ` +
      `"× twin" is the median of the rounds' ratios to the twin measured beside it, each round's in brackets; "× tsgunicorn defaults" ` +
      `divides a row's ratio to bare node by tsgunicorn's own, round by round. ` +
      `The HTTP/2 rows (h2c with prior knowledge, h2 over TLS, each against bare node:http2) are driven by h2load instead ` +
      `(\`-t1 -c${H2LOAD_CLIENTS} -m${H2LOAD_STREAMS} -D${cpuDurationS}\`, pinned the same way). ` +
      `req/s and latency come from the same runs, with two servers sharing one CPU, and are **noisy**.`,
    '',
    table(
      [
        'Server',
        'Mode',
        'CPU per request',
        'of which',
        '× twin',
        '× tsgunicorn defaults',
        'req/s (noisy)',
        'p50 (noisy)',
        'p99 (noisy)',
        'errors',
      ],
      cpuRows(cpu),
    ),
    '',
    ...journalNote(cpu),
    '',
    '## Throughput',
    '',
    `Load: \`wrk -t${WRK_THREADS} -c${WRK_CONNECTIONS} -d${durationS}s --latency\` on 127.0.0.1, unpinned, in passes alternating in order ` +
      `(tsgunicorn -w 2 and node:cluster SCHED_NONE in more of them), the median req/s per server and mode, each start after a 1 s keep-alive warm-up; ` +
      `"Connection: close" adds \`-H 'Connection: close'\`. Every server answers GET / with "Hello, World!\\n". Errors = non-2xx + socket errors. ` +
      `Spread = responses per worker process during that run, busiest first. These figures are **noisy** on a shared machine.`,
    '',
    table(['Server', 'Mode', 'req/s', '× SCHED_NONE', 'p50', 'p99', 'errors', 'spread over workers'], throughputRows(results)),
    '',
    '## HTTP/2 throughput',
    '',
    `Load: \`h2load -t1 -c${H2LOAD_CLIENTS} -m${H2LOAD_STREAMS} -D${durationS}\` on 127.0.0.1 (h2c: prior knowledge; h2: TLS with ALPN, ` +
      `the same certificate), after a warm-up of ${H2LOAD_WARMUP_REQUESTS.toLocaleString('en-US')} requests, in passes alternating in order; the median req/s. Both sides serve ` +
      `the hello-world listener of the HTTP/1.1 table with 2 workers. CPU per request: the schedstat time of every thread of the ` +
      `server's processes during the measured run over the responses they counted, the median over passes (unpinned: it moves ` +
      `with other load too, less than req/s). Both are **noisy** on a shared machine. Errors = non-2xx + failed requests.`,
    '',
    table(
      ['Server', 'req/s', '× node:http2 under node:cluster', 'CPU per request', '× node:http2 (CPU)', 'mean latency', 'errors'],
      http2Rows(http2),
    ),
    '',
    '## Side by side',
    '',
    `The compared pairs driven **at the same time**, each by its own load generator, unpinned: \`wrk -t${WRK_THREADS} -c${WRK_CONNECTIONS} -d${durationS}s\` ` +
      `(HTTP/1.1, after a 1 s warm-up) or \`h2load -t1 -c${H2LOAD_CLIENTS} -m${H2LOAD_STREAMS} -D${durationS}\` (HTTP/2, after ${H2LOAD_WARMUP_REQUESTS.toLocaleString('en-US')} requests), ` +
      `in passes alternating which load starts first, on fresh starts of both servers (a few passes each). Run one after the other, as above, a server's req/s moves by tens of percent from ` +
      `pass to pass with the machine's speed; side by side both meet the same machine, and the ratio of what each served in the same ` +
      `seconds is steady. Each server has about half the machine, so req/s is lower than above. The throughput targets are on these ratios.`,
    '',
    table(['Pair', 'Mode', 'req/s (medians)', 'ratio (median)', 'each pass', 'errors'], sideBySideRows(sideBySide)),
    '',
    '## Startup and memory',
    '',
    `Worker RSS: the mean of the master's live children, idle a second after the first 200, a second after light load ` +
      `(2,000 sequential requests, blocks of 100 alternating between new connections and one kept-alive connection) and after the throughput runs; ` +
      `each the median of the passes (light load: tsgunicorn -w 2 and node:cluster SCHED_NONE only, in each of their passes).`,
    '',
    table(
      ['Server', 'workers', 'spawn → first 200', 'master RSS after load', 'worker RSS idle', 'after light load', 'after heavy load'],
      startupRows(results),
    ),
    '',
    `Worker RSS after the same light load with one worker each, so that every request reaches the worker measured ` +
      `(with two, how the kernel splits the requests between them moves their mean by several MB): the median of rounds alternating in order.`,
    '',
    table(
      ['Server', 'worker RSS after light load'],
      [...light.values()].map((r) => [r.spec.label, `${mb(r.lightWorkerRssKb)}${samplesRange(r.samplesKb, 'rounds')}`]),
    ),
    '',
    '## Targets',
    '',
    table(
      ['Target', 'Measured', 'Status'],
      evaluateTargets(results, cpu, light, http2, sideBySide).map((r) => [r.target, r.measured, r.status]),
    ),
    ...(failures.length ? ['', '## Failures', '', ...failures.map((r) => `### ${r.spec.label}\n\n\`\`\`\n${r.error.trim()}\n\`\`\``)] : []),
    '',
  ].join('\n');
}
