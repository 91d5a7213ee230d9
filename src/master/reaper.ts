// As PID 1 (a container without an init), processes orphaned by the app's child
// processes are reparented to the master, and Node waits only for the children
// it spawned: their exits would stay zombies, filling the PID table. On each
// SIGCHLD the master reaps its zombie children that are not its workers (libuv
// waits for those and reports their exits) with native/reaper's waitpid.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAddon } from '../systemd/addon.js';
import type { Logger } from '../logging/logger.js';

const ADDON = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../native/reaper/build/Release/reaper.node');

/** PID and state of each child of `parent`, from /proc/PID/stat ("pid (comm) state ppid ..."). */
function zombieChildren(parent: number): number[] {
  const zombies: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (entry.charCodeAt(0) > 0x39) continue; // not a PID
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
    } catch {
      continue; // exited meanwhile
    }
    // comm may hold spaces and parentheses: the fields after it follow the last ')'.
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ', 2);
    if (state === 'Z' && Number(ppid) === parent) zombies.push(Number(entry));
  }
  return zombies;
}

export function reapOrphansAsInit(isWorker: (pid: number) => boolean, logger: Pick<Logger, 'warning' | 'debug'>): void {
  if (process.pid !== 1) return;
  const addon = loadAddon<{ reap(pid: number): boolean }>(ADDON, (msg) => logger.debug(msg));
  if (addon === null) {
    logger.warning(
      'Running as PID 1 without the reaper addon: orphaned processes will stay zombies (run under an init, e.g. docker run --init)',
    );
    return;
  }
  process.on('SIGCHLD', () => {
    for (const pid of zombieChildren(1)) if (!isWorker(pid)) addon.reap(pid);
  });
}
