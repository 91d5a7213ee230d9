// Sockets handed over by systemd socket activation, read the way sd_listen_fds(3)
// and sd_listen_fds_with_names(3) read them, with unset_environment=1.

export interface InheritedSocket {
  fd: number;
  name: string;
}

/** sd_listen_fds(3): "The first file descriptor may be found at file descriptor number 3". */
const SD_LISTEN_FDS_START = 3;

/** The variables sd_listen_fds(3) consumes; unset afterwards so no child or app misreads them. */
export const LISTEN_ENV_NAMES = ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES'] as const;

// libsystemd rejects a count above INT_MAX - SD_LISTEN_FDS_START (-EINVAL).
const MAX_FDS = 2 ** 31 - 1 - SD_LISTEN_FDS_START;

/** A variable systemd sets to a decimal number (LISTEN_PID, WATCHDOG_USEC), or null when unset or anything else. */
export function decimalVariable(value: string | undefined): number | null {
  return value !== undefined && /^[0-9]+$/.test(value) ? Number(value) : null;
}

export function takeListenFds(env: NodeJS.ProcessEnv = process.env, pid = process.pid): InheritedSocket[] {
  const { LISTEN_PID: listenPid, LISTEN_FDS: listenFds, LISTEN_FDNAMES: listenFdNames } = env;
  // unset_environment=1: the variables are removed whatever the outcome.
  for (const name of LISTEN_ENV_NAMES) delete env[name];

  // "If the LISTEN_PID variable is not set or does not match the PID of the
  // calling process, ... returns 0": the fds were meant for another process.
  if (decimalVariable(listenPid) !== pid) return [];
  const count = decimalVariable(listenFds);
  if (count === null || count === 0 || count > MAX_FDS) return [];

  // LISTEN_FDNAMES is colon-separated, one name per fd in order; when it is
  // absent every fd is named "unknown", and a count that differs is -EINVAL.
  const names = listenFdNames === undefined ? new Array<string>(count).fill('unknown') : listenFdNames.split(':');
  if (names.length !== count) return [];
  return names.map((name, i) => ({ fd: SD_LISTEN_FDS_START + i, name }));
}
