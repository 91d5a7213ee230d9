// Drives one load run with wrk and returns its numbers, read from the JSON
// line wrk-report.lua prints rather than from wrk's human output.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const REPORT_SCRIPT = fileURLToPath(new URL('../wrk-report.lua', import.meta.url));

export const WRK_THREADS = 1;
export const WRK_CONNECTIONS = 64;

/**
 * @param {string} url
 * @param {{ durationS: number, close: boolean }} options close sends `Connection: close` on every request
 * @returns {Promise<{ rps: number, requests: number, p50Ms: number, p99Ms: number, errors: number, errorDetail: string }>}
 */
export async function runWrk(url, { durationS, close }) {
  const args = [
    `-t${WRK_THREADS}`,
    `-c${WRK_CONNECTIONS}`,
    `-d${durationS}s`,
    '--latency',
    '-s',
    REPORT_SCRIPT,
    ...(close ? ['-H', 'Connection: close'] : []),
    url,
  ];
  const { stdout } = await run('wrk', args, { timeout: (durationS + 30) * 1000, maxBuffer: 1 << 20 });
  const line = stdout.split('\n').find((l) => l.startsWith('BENCH_JSON '));
  if (!line) throw new Error(`wrk printed no summary:\n${stdout}`);
  const s = JSON.parse(line.slice('BENCH_JSON '.length));
  const socketErrors = s.connect + s.read + s.write + s.timeout;
  const detail = ['status', 'connect', 'read', 'write', 'timeout']
    .filter((k) => s[k] > 0)
    .map((k) => `${k === 'status' ? 'non-2xx' : k} ${s[k]}`)
    .join(', ');
  return {
    rps: s.requests / (s.duration_us / 1e6),
    requests: s.requests,
    p50Ms: s.p50_us / 1000,
    p99Ms: s.p99_us / 1000,
    errors: s.status + socketErrors,
    errorDetail: detail,
  };
}
