// The text `tsgunicorn status` and `top` print: a summary of the master, then a
// table of workers; and the one-line-per-instance list.
import { grouped, short } from '../status-line.js';
import type { UnitState } from './instances.js';
import type { StatusReport } from './protocol.js';

const mb = (bytes: number | null): string => (bytes === null ? '-' : `${short(bytes / 1048576)} MB`);

/** "3d 4h", "2h 03m", "5m 02s", "12.3 s" */
export function age(sec: number): string {
  if (sec < 60) return `${short(sec)} s`;
  const m = Math.floor(sec / 60);
  if (m < 60) return `${m}m ${String(Math.floor(sec % 60)).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows]
    .map((r) =>
      r
        .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function rate(report: StatusReport): string {
  const { requests: r } = report;
  if (r.ratePerSec === null) return `${grouped(r.total)} requests`;
  const latency = r.p50Ms === null ? '' : ` · p50 ${short(r.p50Ms)} ms · p99 ${short(r.p99Ms ?? 0)} ms`;
  return `${grouped(r.total)} requests · ${short(r.ratePerSec)} req/s${latency} (last ${short(r.windowSec ?? 0)} s)`;
}

export function formatStatus(report: StatusReport): string {
  const restarts = Object.entries(report.restarts).filter(([, n]) => n > 0);
  const lines = [
    `tsgunicorn ${report.version} · ${report.name} · master pid ${report.pid} · up ${age(report.uptimeSec)} · generation ${report.generation} · ${report.phase}`,
    `listening: ${report.listeners.join(', ')}`,
    `workers: ${report.workers.filter((w) => w.state === 'ready').length}/${report.workersWanted} ready · health ${report.health}`,
    `requests: ${rate(report)}`,
    `restarts: ${restarts.length === 0 ? 'none' : restarts.map(([reason, n]) => `${reason} ${n}`).join(', ')}`,
  ];
  if (report.reloadFailure)
    lines.push(`reload failed at ${report.reloadFailure.at}: ${report.reloadFailure.reason}; serving generation ${report.generation}`);
  const rows = report.workers.map((w) => [
    String(w.pid),
    String(w.generation),
    age(w.ageSec),
    w.state,
    grouped(w.requests),
    String(w.inFlight),
    w.oldest ? `${w.oldest.method} ${w.oldest.path} (${age(w.oldest.ageSec)})` : '-',
    mb(w.rssBytes),
    w.cpuPercent === null ? '-' : `${short(w.cpuPercent)}%`,
  ]);
  const header = ['PID', 'GEN', 'AGE', 'STATE', 'REQUESTS', 'IN FLIGHT', 'OLDEST IN FLIGHT', 'RSS', 'CPU'];
  return `${lines.join('\n')}\n\n${table(header, rows)}\n`;
}

/** One instance of `tsgunicorn status`: its report when it answered, its unit's state, why it could not be read. */
export interface InstanceRow {
  name: string;
  unit: UnitState | null;
  report?: StatusReport;
  /** running, reloading, stopping (the master's phase), or the unit's: stopped, failed, activating… */
  state: string;
  lastFailure: string | null;
  /** Why a running instance did not answer. */
  error?: string | undefined;
}

export function formatInstances(rows: InstanceRow[]): string {
  const header = ['NAME', 'PID', 'UPTIME', 'WORKERS', 'REQ/S', 'P99', 'RSS', 'HEALTH', 'RESTARTS', 'STATE', 'LAST FAILURE'];
  const cells = rows.map((row) => {
    const masterRestarts = row.unit?.restarts ?? 0;
    const r = row.report;
    if (!r)
      return [row.name, '-', '-', '-', '-', '-', '-', '-', restartsCell(0, masterRestarts), row.state, row.error ?? row.lastFailure ?? '-'];
    const ready = r.workers.filter((w) => w.state === 'ready').length;
    const rss = r.workers.reduce((n, w) => n + (w.rssBytes ?? 0), 0);
    // A reload's retirements are its purpose, not restarts.
    const workerRestarts = Object.entries(r.restarts).reduce((n, [reason, k]) => (reason === 'reload' ? n : n + k), 0);
    return [
      row.name,
      String(r.pid),
      age(r.uptimeSec),
      `${ready}/${r.workersWanted}`,
      r.requests.ratePerSec === null ? '-' : short(r.requests.ratePerSec),
      r.requests.p99Ms === null ? '-' : `${short(r.requests.p99Ms)} ms`,
      mb(rss),
      r.health,
      restartsCell(workerRestarts, masterRestarts),
      row.state,
      row.lastFailure ?? '-',
    ];
  });
  return `${table(header, cells)}\n`;
}

// Workers the master replaced (but for reloads), and masters systemd restarted.
const restartsCell = (workers: number, master: number): string => (master > 0 ? `${workers + master} (${master} master)` : String(workers));
