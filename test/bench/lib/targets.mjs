// The acceptance targets the bench checks, each evaluated from the results of
// one run. A target whose inputs were not measured says why instead of met/not met.

export const MODES = /** @type {const} */ (['keepalive', 'close']);
export const MODE_LABEL = { keepalive: 'keep-alive', close: 'Connection: close' };

export const ratio = (a, b) => a / b;
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

/** Why a result cannot be used, or undefined when it can. */
function missing(result) {
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

/** Where the journal's cost goes, when CPU per request was measured: the workers' share and journald's. */
function cpuBreakdown(base, journal) {
  if (!base.cpuUs || !journal.cpuUs) return '';
  const us = (x) => `${Math.round(x)} µs`;
  return `; CPU per request: workers ${us(base.cpuUs.workers)} → ${us(journal.cpuUs.workers)}, ` + `journald ${us(journal.cpuUs.journald)}`;
}

/** Whether journald stored an entry for every request, when that was counted. */
function storedNote(journal) {
  if (journal.journalStored === undefined) return '';
  return `; ${journal.journalStored.toLocaleString('en-US')} entries stored for ${journal.requests.toLocaleString('en-US')} requests`;
}

/** @param {Map<string, any>} results by server id */
export function evaluateTargets(results) {
  const get = (id) => results.get(id);
  const tsg = get('tsg');
  const rows = [];
  for (const mode of MODES) {
    rows.push(throughputRow(`tsgunicorn -w 2 ≥ 0.97× node:cluster SCHED_NONE, ${MODE_LABEL[mode]}`, tsg, get('cluster-none'), mode, 0.97));
  }
  rows.push(throughputRow('tsgunicorn -w 2 ≥ 2× PM2 cluster, Connection: close', tsg, get('pm2'), 'close', 2));
  for (const mode of MODES) {
    rows.push(throughputRow(`tsgunicorn -w 2 ≥ 6× Gunicorn + Flask, ${MODE_LABEL[mode]}`, tsg, get('gunicorn'), mode, 6));
  }
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
  rows.push(
    // The same hello-world app on both, before load: what tsgunicorn adds to a worker (heartbeat thread, logging,
    // metrics). After load both hold tens of MB more heap, by as much as the last GC left, which hides those few MB.
    row('tsgunicorn worker RSS ≤ node:cluster worker + 8 MB, idle', [tsg, get('cluster-none')], () => {
      const own = tsg.idleWorkerRssKb;
      const bare = get('cluster-none').idleWorkerRssKb;
      if (own === undefined || bare === undefined) return { measured: 'unreadable', met: false };
      const difference = (own - bare) / 1024;
      return {
        measured: `${Math.abs(difference).toFixed(1)} MB ${difference >= 0 ? 'over' : 'under'} (${(own / 1024).toFixed(1)} vs ${(bare / 1024).toFixed(1)} MB, mean of the workers)`,
        met: own - bare <= 8 * 1024,
      };
    }),
  );
  for (const mode of MODES) {
    rows.push(
      // Against the same server without an access log: in the container when it was measured there.
      row(`Access log to the journal costs ≤ 10 %, ${MODE_LABEL[mode]}`, [get('tsg-journal'), get('tsg-container') ?? tsg], () => {
        const base = (get('tsg-container') ?? tsg).modes[mode];
        const journal = get('tsg-journal').modes[mode];
        const cost = 1 - ratio(journal.rps, base.rps);
        // Entries dropped on the way (journald's rate limit) would make the log look cheaper than it is.
        const complete = journal.journalStored === undefined || journal.journalStored >= journal.requests;
        return {
          measured: `${(cost * 100).toFixed(1)} % slower${cpuBreakdown(base, journal)}${storedNote(journal)}`,
          met: cost <= 0.1 && complete,
        };
      }),
    );
  }
  for (const mode of MODES) {
    rows.push(
      row(`Fetch handler within 15 % of node listener, ${MODE_LABEL[mode]}`, [get('tsg-fetch'), tsg], () => {
        const r = ratio(get('tsg-fetch').modes[mode].rps, tsg.modes[mode].rps);
        return { measured: `${r.toFixed(2)}× the node listener`, met: r >= 0.85 };
      }),
    );
  }
  for (const mode of MODES) {
    rows.push(
      throughputRow(
        `Express as a server script within 3 % of the same app exported, ${MODE_LABEL[mode]}`,
        get('tsg-express-script'),
        get('tsg-express'),
        mode,
        0.97,
      ),
    );
  }
  for (const mode of MODES) {
    rows.push(
      // The same file destination and batching: the difference is the line's formatting.
      throughputRow(
        `JSON access log within 5 % of the text one (both to a file), ${MODE_LABEL[mode]}`,
        get('tsg-logfile-json'),
        get('tsg-logfile'),
        mode,
        0.95,
      ),
    );
  }
  return rows;
}
