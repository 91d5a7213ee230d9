// Service state notifications to systemd, sd_notify(3), sent by the master only
// (NotifyAccess=main). Each call is one datagram through the sd-notify addon,
// which reads NOTIFY_SOCKET from the process environment at every call.
import { loadAddon } from './addon.js';
import { decimalVariable, LISTEN_ENV_NAMES } from './listen-fds.js';

export interface Notifier {
  readonly enabled: boolean;
  ready(): void;
  reloading(): void;
  stopping(): void;
  status(line: string): void;
  watchdog(): void;
  /** How often to send WATCHDOG=1: half of WATCHDOG_USEC, 0 when the watchdog is off. */
  readonly watchdogIntervalMs: number;
}

interface SdNotifyAddon {
  /** sd_notify(0, state): the string is sent as one datagram. */
  sendState(state: string): void;
}

/**
 * `env` decides whether notifications are on; libsystemd itself reads the real
 * process environment, so production passes process.env (the default).
 */
export function createNotifier(env: NodeJS.ProcessEnv = process.env, pid = process.pid, debug?: (msg: string) => void): Notifier {
  const addon = env.NOTIFY_SOCKET ? loadAddon<SdNotifyAddon>('sd-notify', debug) : null;
  if (!env.NOTIFY_SOCKET) debug?.('NOTIFY_SOCKET not set: no systemd notifications');
  const send = addon ? (state: string) => addon.sendState(state) : () => {};
  const enabled = addon !== null;
  return {
    enabled,
    ready: () => send('READY=1'),
    // Type=notify-reload wants the time the reload started as CLOCK_MONOTONIC
    // µs in the same message; process.hrtime is libuv's uv_hrtime, which is
    // clock_gettime(CLOCK_MONOTONIC) on Linux.
    reloading: () => send(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`),
    stopping: () => send('STOPPING=1'),
    // A newline would start another assignment (MAINPID=, ...) and a NUL would
    // cut the datagram short: the status stays one line.
    status: (line: string) => send(`STATUS=${line.replace(/[\r\n\0]+/g, ' ')}`),
    watchdog: () => send('WATCHDOG=1'),
    watchdogIntervalMs: enabled ? watchdogUsec(env, pid) / 2000 : 0,
  };
}

// sd_watchdog_enabled(3): on when WATCHDOG_USEC is a positive number of µs and
// WATCHDOG_PID, if set, is this process; the daemon should then send
// WATCHDOG=1 at half that interval.
function watchdogUsec(env: NodeJS.ProcessEnv, pid: number): number {
  const usec = decimalVariable(env.WATCHDOG_USEC);
  if (usec === null) return 0;
  if (env.WATCHDOG_PID !== undefined && decimalVariable(env.WATCHDOG_PID) !== pid) return 0;
  return usec;
}

/** The master's environment for its workers: the notify socket, watchdog and inherited-fd variables are the master's alone. */
export function systemdChildEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const child = { ...env };
  for (const name of ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID', ...LISTEN_ENV_NAMES]) delete child[name];
  return child;
}
