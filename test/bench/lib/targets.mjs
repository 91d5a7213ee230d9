// The acceptance targets the bench checks, each evaluated from the results of
// one run. A target whose inputs were not measured says why instead of met/not met.

export const MODES = /** @type {const} */ (['keepalive', 'close']);
export const MODE_LABEL = { keepalive: 'keep-alive', close: 'Connection: close', h2load: 'HTTP/2 (h2load -c64 -m10)' };
/** The load modes of a CPU row: HTTP/2 servers are driven by h2load, in one mode. */
export const modesOf = (spec) => (spec.h2load ? ['h2load'] : MODES);

export const ratio = (a, b) => a / b;
/** The median of the defined values (the mean of the middle two for an even count), or undefined. */
export function median(xs) {
  const sorted = xs.filter((x) => x !== undefined).sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  const mid = (sorted.length - 1) / 2;
  return (sorted[Math.floor(mid)] + sorted[Math.ceil(mid)]) / 2;
}

/** Why a result cannot be used, or undefined when it can. */
export function missing(result) {
  if (!result) return 'not run';
  return result.skipped ?? (result.error ? 'failed to run' : undefined);
}

function row(target, inputs, measure) {
  const why = inputs.map(missing).find(Boolean);
  if (why) return { target, measured: why, status: 'not measured' };
  const { measured, met } = measure();
  return { target, measured, status: met ? 'met' : 'not met' };
}

function throughputRow(target, a, b, mode, atLeast) {
  return row(target, [a, b], () => {
    const r = ratio(a.modes[mode].rps, b.modes[mode].rps);
    return {
      measured: `${r.toFixed(2)}× (${Math.round(a.modes[mode].rps)} vs ${Math.round(b.modes[mode].rps)} req/s)`,
      met: r >= atLeast,
    };
  });
}

/**
 * A throughput target on a pair driven side by side (lib/side-by-side.mjs): the median of the passes' ratios,
 * with the same pair's ratio measured one after the other beside it, for comparison (`own` and `peer`: their
 * results from those passes).
 */
function sideBySideRow(target, pair, mode, atLeast, [own, peer]) {
  const inputs = pair ? [pair.error ? { error: pair.error } : pair] : [undefined];
  return row(target, inputs, () => {
    const m = pair.modes[mode];
    const sequential =
      missing(own) || missing(peer) ? '' : `; one after the other ${ratio(own.modes[mode].rps, peer.modes[mode].rps).toFixed(2)}×`;
    return {
      measured:
        `${m.ratio.toFixed(3)}× side by side (median of ${m.ratios.length} passes: ${m.ratios.map((r) => r.toFixed(2)).join(', ')}; ` +
        `${Math.round(m.rps[0])} vs ${Math.round(m.rps[1])} req/s)${sequential}`,
      met: m.ratio >= atLeast,
    };
  });
}

/**
 * The CPU-per-request rows: each measured server beside its bare twin, and for the paths a user turns on, beside
 * tsgunicorn with its defaults too. limit: the target ratio to the twin, per mode.
 */
export const CPU_ROWS = [
  { id: 'tsg', twin: 'bare', limit: { keepalive: 1.02, close: 1.05 } },
  { id: 'tsg-express-script', twin: 'tsg-express', limit: { keepalive: 1.03, close: 1.03 } },
  { id: 'tsg-otel', twin: 'bare-otel' },
  { id: 'tsg-logfile', twin: 'bare', plain: 'tsg' },
  { id: 'tsg-logfile-json', twin: 'bare', plain: 'tsg' },
  { id: 'tsg-journal', twin: 'tsg-container' },
  { id: 'tsg-proxy-v2', twin: 'bare', plain: 'tsg' },
  { id: 'tsg-tls', twin: 'bare-tls' },
  { id: 'tsg-h2c', twin: 'bare-h2c' },
  { id: 'tsg-h2', twin: 'bare-h2' },
];

/**
 * How many times `other`'s CPU per request a CPU row's is, in one mode, from figures measured at the same time:
 * against its twin, the median of the rounds' ratios; against another row with the same twin, the median of the
 * rounds' quotients of their ratios to it (each round's twin measured beside each). Undefined otherwise.
 * @returns {{ ratio: number, us: number, otherUs: number } | undefined}
 */
export function cpuVersus(row, other, mode) {
  const own = row.modes[mode];
  const theirs = other.modes[mode];
  const twinOf = (result) => CPU_ROWS.find((r) => r.id === result.spec.id)?.twin;
  let ratios;
  if (twinOf(row) === other.spec.id) ratios = own.twinRatios;
  else if (twinOf(row) !== undefined && twinOf(row) === twinOf(other) && own.twinRatios && theirs.twinRatios)
    ratios = own.twinRatios.map((r, round) => r / theirs.twinRatios[round]);
  return ratios?.length ? { ratio: median(ratios), us: own.us, otherUs: theirs.us } : undefined;
}

/** The mean RSS of tsgunicorn's workers against bare node:cluster's, read at `key`, at most limitMb over. */
function workerRssRow(target, tsg, bare, key, limitMb) {
  return row(target, [tsg, bare], () => {
    const own = tsg[key];
    const theirs = bare[key];
    if (own === undefined || theirs === undefined) return { measured: 'unreadable', met: false };
    const difference = (own - theirs) / 1024;
    return {
      measured: `${Math.abs(difference).toFixed(1)} MB ${difference >= 0 ? 'over' : 'under'} (${(own / 1024).toFixed(1)} vs ${(theirs / 1024).toFixed(1)} MB, mean of the workers)`,
      met: own - theirs <= limitMb * 1024,
    };
  });
}

function cpuRatioRow(target, a, b, mode, atMost) {
  return row(target, [a, b], () => {
    const versus = cpuVersus(a, b, mode);
    if (!versus) return { measured: 'not measured side by side', met: false };
    const { ratio: r, us, otherUs } = versus;
    return { measured: `${r.toFixed(3)}× (median of the rounds; ${us.toFixed(1)} vs ${otherUs.toFixed(1)} µs)`, met: r <= atMost };
  });
}

/**
 * @param {Map<string, any>} results throughput results by server id; @param {Map<string, any>} cpu CPU results by
 * server id; @param {Map<string, any>} light the one-worker pair's RSS after light load, by server id;
 * @param {Array<{ protocol: string, bare: any, tsg: any }>} http2 the HTTP/2 pairs' results
 * @param {Array<{ protocol: string, specs: any[], modes?: any, error?: string }>} sideBySide the compared pairs driven at the same time
 */
export function evaluateTargets(results, cpu, light, http2 = [], sideBySide = []) {
  const get = (id) => results.get(id);
  const tsg = get('tsg');
  const rows = [];
  for (const { id, twin, limit } of CPU_ROWS.filter((r) => r.limit)) {
    for (const mode of MODES) {
      const what = id === 'tsg' ? 'tsgunicorn -w 1 (defaults) ≤' : `${cpu.get(id)?.spec.label ?? id} ≤`;
      const against = cpu.get(twin)?.spec.label ?? twin;
      rows.push(
        cpuRatioRow(
          `CPU per request: ${what} ${limit[mode]}× ${against}, ${MODE_LABEL[mode]}`,
          cpu.get(id),
          cpu.get(twin),
          mode,
          limit[mode],
        ),
      );
    }
  }
  for (const mode of MODES) {
    rows.push(
      cpuRatioRow(
        `CPU per request: JSON access log ≤ 1.05× the text one (both to a file), ${MODE_LABEL[mode]}`,
        cpu.get('tsg-logfile-json'),
        cpu.get('tsg-logfile'),
        mode,
        1.05,
      ),
    );
  }
  rows.push(
    workerRssRow(
      'Worker RSS after light load ≤ node:cluster worker + 2 MB (one worker each)',
      light.get('tsg'),
      light.get('cluster-none'),
      'lightWorkerRssKb',
      2,
    ),
  );
  const http1SideBySide = sideBySide.find((pair) => pair.protocol === 'HTTP/1.1');
  for (const mode of MODES) {
    rows.push(
      sideBySideRow(`Throughput: tsgunicorn -w 2 ≥ 1.0× node:cluster SCHED_NONE, ${MODE_LABEL[mode]}`, http1SideBySide, mode, 1, [
        tsg,
        get('cluster-none'),
      ]),
    );
  }
  rows.push(throughputRow('Throughput: tsgunicorn -w 2 ≥ 2× PM2 cluster, Connection: close', tsg, get('pm2'), 'close', 2));
  rows.push(throughputRow('Throughput: tsgunicorn -w 2 ≥ 6× Gunicorn + Flask, keep-alive', tsg, get('gunicorn'), 'keepalive', 6));
  rows.push(
    row('No tsgunicorn worker serves > 1.5× the mean share, Connection: close', [tsg], () => {
      const { maxOverMean, perWorker } = tsg.modes.close.spread;
      return {
        measured: `busiest worker ${maxOverMean?.toFixed(2) ?? '?'}× mean (${perWorker.join(' / ')})`,
        met: maxOverMean !== undefined && maxOverMean <= 1.5,
      };
    }),
  );
  rows.push(
    row('Start → first 200 ≤ 400 ms, 2 workers', [tsg], () => {
      const m = median(tsg.readyMs);
      return {
        measured: `${Math.round(m)} ms median of ${tsg.readyMs.length} (${tsg.readyMs.map((x) => Math.round(x)).join(', ')})`,
        met: m <= 400,
      };
    }),
  );
  rows.push(
    row('Master RSS ≤ 60 MB after load', [tsg], () => ({
      measured: tsg.rssKb === undefined ? 'unreadable' : `${(tsg.rssKb / 1024).toFixed(1)} MB`,
      met: tsg.rssKb !== undefined && tsg.rssKb <= 60 * 1024,
    })),
  );
  // The same hello-world app on both, before load: what tsgunicorn adds to a worker (heartbeat thread, logging,
  // metrics).
  rows.push(workerRssRow('tsgunicorn worker RSS ≤ node:cluster worker + 8 MB, idle', tsg, get('cluster-none'), 'idleWorkerRssKb', 8));
  for (const mode of MODES) {
    rows.push(
      row(`Fetch handler within 15 % of node listener, ${MODE_LABEL[mode]}`, [get('tsg-fetch'), tsg], () => {
        const r = ratio(get('tsg-fetch').modes[mode].rps, tsg.modes[mode].rps);
        return { measured: `${r.toFixed(2)}× the node listener`, met: r >= 0.85 };
      }),
    );
  }
  for (const { protocol, bare, tsg: own } of http2) {
    rows.push(
      sideBySideRow(
        `HTTP/2 throughput: tsgunicorn -w 2 ≥ 0.95× node:http2 under node:cluster, ${protocol} (h2load)`,
        sideBySide.find((pair) => pair.protocol === protocol),
        'h2load',
        0.95,
        [own, bare],
      ),
    );
  }
  return rows;
}
