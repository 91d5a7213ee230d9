// Every tsgunicorn@NAME instance this machine has, for `tsgunicorn status`
// (like `pm2 ls`, stopped and failed ones too): those with an ini in
// /etc/tsgunicorn, an app in /srv/NAME, a control socket directory, or a unit
// systemd knows; each with its unit's state as `systemctl show` gives it.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { findEntryPoint } from '../app/spec.js';
import { INSTANCE_APP_DIR, INSTANCE_CONFIG_DIR } from '../settings/instance.js';
import { INSTANCES_RUN_DIR } from './paths.js';

/** What systemd says of tsgunicorn@NAME.service; null fields where it cannot say (no systemd). */
export interface UnitState {
  /** active, failed, inactive, activating, … */
  active: string;
  /** running, failed, dead, start-pre, … */
  sub: string;
  /** success, exit-code, start-limit-hit, … */
  result: string;
  /** Restarts systemd made of the master (Restart=on-failure). */
  restarts: number;
  /** The master's last exit status (2, 3, 4 are the admin's to fix). */
  exitStatus: number;
  /** When it last became inactive or failed, as systemctl prints it; '' if never. */
  since: string;
}

const PROPERTIES = ['Id', 'ActiveState', 'SubState', 'Result', 'NRestarts', 'ExecMainStatus', 'InactiveEnterTimestamp'];
const unitOf = (name: string): string => `tsgunicorn@${name}.service`;

function systemctl(args: string[]): string | null {
  const r = spawnSync('systemctl', args, { encoding: 'utf8' });
  return r.status === 0 && typeof r.stdout === 'string' ? r.stdout : null;
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).map((e) => e.name);
  } catch {
    return [];
  }
}

/** The names of every instance, sorted. */
export function instanceNames(): string[] {
  const names = new Set<string>();
  for (const file of list(INSTANCE_CONFIG_DIR)) if (file.endsWith('.ini')) names.add(file.slice(0, -'.ini'.length));
  for (const dir of list(INSTANCE_APP_DIR)) if (findEntryPoint(path.join(INSTANCE_APP_DIR, dir))) names.add(dir);
  for (const dir of list(INSTANCES_RUN_DIR)) names.add(dir);
  const units = systemctl(['list-units', '--all', '--plain', '--no-legend', '--no-pager', '--type=service', 'tsgunicorn@*']) ?? '';
  for (const line of units.split('\n')) {
    const name = /^\S*?tsgunicorn@(.+)\.service\s/.exec(line.trim())?.[1];
    if (name) names.add(name);
  }
  return [...names].filter((n) => n !== '' && !n.startsWith('.')).sort();
}

/** The unit state of each instance (one `systemctl show` for all); empty without systemd. */
export function unitStates(names: string[]): Map<string, UnitState> {
  const states = new Map<string, UnitState>();
  if (names.length === 0) return states;
  const out = systemctl(['show', '--no-pager', `--property=${PROPERTIES.join(',')}`, ...names.map(unitOf)]);
  if (out === null) return states;
  for (const block of out.split(/\n\n+/)) {
    const p = Object.fromEntries(
      block
        .split('\n')
        .filter((l) => l.includes('='))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    const name = /^tsgunicorn@(.+)\.service$/.exec(p.Id ?? '')?.[1];
    if (!name) continue;
    states.set(name, {
      active: p.ActiveState ?? '',
      sub: p.SubState ?? '',
      result: p.Result ?? '',
      restarts: Number(p.NRestarts ?? 0) || 0,
      exitStatus: Number(p.ExecMainStatus ?? 0) || 0,
      since: p.InactiveEnterTimestamp ?? '',
    });
  }
  return states;
}

/** Of a failed unit: why, and the commands that start it again; null when it has not failed. */
export function failureAdvice(name: string, state: UnitState): string | null {
  if (state.active !== 'failed') return null;
  const unit = unitOf(name);
  const what =
    state.result === 'exit-code'
      ? `exit ${state.exitStatus}${EXIT_MEANING[state.exitStatus] ? ` (${EXIT_MEANING[state.exitStatus]})` : ''}`
      : state.result;
  // After systemd's start limit, start is refused until the failed state is reset.
  const again =
    state.result === 'start-limit-hit'
      ? `systemctl reset-failed ${unit} tsgunicorn@${name}.socket && systemctl start ${unit}`
      : `systemctl start ${unit}`;
  return `failed${state.since ? ` at ${state.since}` : ''}: ${what}; journalctl -u ${unit} -p err says why; once fixed: ${again}`;
}

const EXIT_MEANING: Record<number, string> = { 2: 'bad settings', 3: 'a worker failed to boot', 4: 'the app failed to load' };
