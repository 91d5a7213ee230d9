// Starts a worker's watchdog: the thread that writes its heartbeats (ipc.ts
// Heartbeat) to the master, and goes on while the app blocks the event loop.
// native/watchdog's plain thread when the addon is built; otherwise a
// node:worker_threads thread (thread.ts), whose V8 isolate costs each worker
// about 13 MB of RSS. Both read the same ActivityBoard and write the same lines.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker as Thread } from 'node:worker_threads';
import type { Logger } from '../../logging/logger.js';
import { loadAddon } from '../../systemd/addon.js';
import type { ActivityBoard } from '../activity-board.js';

export interface WatchdogOptions {
  /** The heartbeat pipe. */
  fd: number;
  intervalMs: number;
  /** How long the process stays once the master is gone, before it kills itself (its loop may be blocked). */
  orphanGraceMs: number;
}

export interface NativeWatchdog {
  start(board: Uint8Array, fd: number, intervalMs: number, orphanGraceMs: number): void;
}

export const NATIVE_WATCHDOG = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../../native/watchdog/build/Release/watchdog.node',
);

/** The two heartbeat sources, for start() and for the test that holds them to the same lines. */
export const heartbeatSources = {
  native(board: ActivityBoard, options: WatchdogOptions, addon: NativeWatchdog): void {
    addon.start(new Uint8Array(board.buffer), options.fd, options.intervalMs, options.orphanGraceMs);
  },
  thread(board: ActivityBoard, options: WatchdogOptions): void {
    new Thread(new URL('./thread.js', import.meta.url), { workerData: { buffer: board.buffer, ...options } }).unref();
  },
};

export function startWatchdog(board: ActivityBoard, options: WatchdogOptions, logger: Pick<Logger, 'debug'>): void {
  const addon = loadAddon<NativeWatchdog>(NATIVE_WATCHDOG, (msg) => logger.debug(msg));
  if (addon) {
    try {
      heartbeatSources.native(board, options, addon);
      logger.debug('Heartbeats from the native watchdog thread');
      return;
    } catch (err) {
      // An addon built from another version of the board's layout.
      logger.debug(`The native watchdog did not start: ${(err as Error).message}`);
    }
  }
  heartbeatSources.thread(board, options);
  logger.debug('Heartbeats from a node:worker_threads watchdog thread');
}
