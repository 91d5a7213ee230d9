// Drives one HTTP/2 load run with h2load (nghttp2) and returns its numbers, read from h2load's summary.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const H2LOAD_CLIENTS = 64;
// Concurrent streams per connection.
export const H2LOAD_STREAMS = 10;
// A warm-up is a count of requests, not a time (runH2load says why).
export const H2LOAD_WARMUP_REQUESTS = 10_000;

/**
 * h2c with prior knowledge for an http: url, h2 by ALPN for https:. With durationS, a timed run; with requests,
 * that many requests, for warming up: h2load's timed mode stops only the clients that have a session when the time
 * is up, so a client whose TLS handshake ends later (a cold server on a loaded machine) requests on and h2load never
 * exits; a run of so many requests ends whenever its clients connect.
 * @param {string} url
 * @param {({ durationS: number } | { requests: number }) & { cpu?: number }} options cpu pins h2load to that CPU (taskset)
 * @returns {Promise<{ rps: number, requests: number, meanMs: number, errors: number, errorDetail: string }>}
 */
export async function runH2load(url, options) {
  const amount = 'requests' in options ? `-n${options.requests}` : `-D${options.durationS}`;
  const args = ['-t1', `-c${H2LOAD_CLIENTS}`, `-m${H2LOAD_STREAMS}`, amount, url];
  const boundS = 'requests' in options ? 120 : options.durationS + 30;
  const [command, ...rest] = options.cpu === undefined ? ['h2load', ...args] : ['taskset', '-c', String(options.cpu), 'h2load', ...args];
  const { stdout } = await run(command, rest, { timeout: boundS * 1000, maxBuffer: 1 << 20 }).catch((err) => {
    throw new Error(`h2load ${args.join(' ')} failed (${err.code ?? err.signal}):\n${err.stdout}${err.stderr}`.trim());
  });
  const rps = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(stdout);
  const counts = /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(stdout);
  const status = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(stdout);
  const time = /time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)/.exec(stdout);
  if (!rps || !counts || !status || !time) throw new Error(`h2load printed no summary:\n${stdout}`);
  const [failed, errored, timedOut] = [counts[4], counts[5], counts[6]].map(Number);
  const non2xx = Number(status[2]) + Number(status[3]) + Number(status[4]);
  const detail = Object.entries({ 'non-2xx': non2xx, failed, errored, timeout: timedOut })
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  return {
    rps: Number(rps[1]),
    requests: Number(counts[2]),
    meanMs: Number(time[1]) * { us: 0.001, ms: 1, s: 1000 }[time[2]],
    errors: non2xx + failed,
    errorDetail: detail,
  };
}
