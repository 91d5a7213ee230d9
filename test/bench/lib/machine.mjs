// Describes the machine and tools a bench run used, for the report header.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg, release, totalmem } from 'node:os';

function firstLine(command, args) {
  try {
    const out = execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return out.split('\n', 1)[0].trim();
  } catch (err) {
    // wrk -v exits non-zero after printing its version
    return (
      String(err.stdout ?? '')
        .split('\n', 1)[0]
        .trim() || 'unknown'
    );
  }
}

export function describeMachine({ gunicorn }) {
  const cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  return {
    cpu: cpuModel,
    cores: availableParallelism(),
    memoryGiB: (totalmem() / 2 ** 30).toFixed(1),
    kernel: `Linux ${release()}`,
    node: process.version,
    wrk: firstLine('wrk', ['-v']).replace(/ Copyright.*/, ''),
    gunicorn: gunicorn ? firstLine(gunicorn, ['--version']) : 'not installed',
    date: new Date().toISOString(),
    // Other work on the machine skews every number; the report says so.
    loadAtStart: loadavg()[0],
  };
}
