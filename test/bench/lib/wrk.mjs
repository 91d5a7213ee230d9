// Drives one load run with wrk and returns its numbers, read from the JSON
// line wrk-report.lua prints rather than from wrk's human output.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const REPORT_SCRIPT = fileURLToPath(new URL('../wrk-report.lua', import.meta.url));
const PROXY_V2_SCRIPT = fileURLToPath(new URL('../proxy-v2.lua', import.meta.url));

export const WRK_THREADS = 1;
export const WRK_CONNECTIONS = 64;

/**
 * @param {string} url
 * @param {{ durationS: number, close: boolean, cpu?: number, proxyV2?: boolean }} options close sends
 *   `Connection: close` on every request; cpu pins wrk to that CPU (taskset); proxyV2 starts each connection with
 *   a PROXY protocol v2 header (proxy-v2.lua)
 * @returns {Promise<{ rps: number, requests: number, p50Ms: number, p99Ms: number, errors: number, errorDetail: string }>}
 */
export async function runWrk(url, { durationS, close, cpu, proxyV2 = false }) {
  const args = [
    `-t${WRK_THREADS}`,
    `-c${WRK_CONNECTIONS}`,
    `-d${durationS}s`,
    '--latency',
    '-s',
    proxyV2 ? PROXY_V2_SCRIPT : REPORT_SCRIPT,
    ...(close ? ['-H', 'Connection: close'] : []),
    url,
    ...(proxyV2 ? ['--', close ? 'close' : 'keepalive', String(WRK_CONNECTIONS)] : []),
  ];
  const [command, ...rest] = cpu === undefined ? ['wrk', ...args] : ['taskset', '-c', String(cpu), 'wrk', ...args];
  const { stdout } = await run(command, rest, { timeout: (durationS + 30) * 1000, maxBuffer: 1 << 20 });
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
