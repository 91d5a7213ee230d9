// A worker never outlives its master. While it boots, the kernel kills it the
// moment the master dies (PR_SET_PDEATHSIG through native/reaper), even while
// importing the app blocks its event loop; without the addon, the IPC channel's
// close ends it as soon as the loop runs. Once it serves, the channel's close
// drains it instead (worker.ts), so in-flight requests finish, and its watchdog
// thread kills it if its loop is blocked.
import { constants } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAddon } from '../systemd/addon.js';

const ADDON = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../native/reaper/build/Release/reaper.node');

const addon = loadAddon<{ setParentDeathSignal(signal: number): void }>(ADDON);
const orphaned = () => process.kill(process.pid, 'SIGKILL');

/** From the worker's first line on: it dies with the master. */
export function dieWithMaster(): void {
  addon?.setParentDeathSignal(constants.signals.SIGKILL);
  process.on('disconnect', orphaned);
}

/** The master that sent the boot message is still the parent: else it died before dieWithMaster() took hold. */
export function checkMaster(masterPid: number): void {
  if (process.ppid !== masterPid) orphaned();
}

/** Serving, with its own handler for the channel's close: the master's death drains it. */
export function serving(): void {
  addon?.setParentDeathSignal(0);
  process.off('disconnect', orphaned);
}
