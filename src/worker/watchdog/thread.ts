// The watchdog's fallback where native/watchdog is not built (see start.ts): runs
// on a node:worker_threads thread inside the worker process and writes the same
// heartbeat lines. Being off the main thread, it keeps reporting while the app
// blocks the event loop, so the master sees the stalled tick and the hung request.
import { writeSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import type { Heartbeat } from '../../ipc.js';
import { ActivityBoard } from '../activity-board.js';
import type { WatchdogOptions } from './start.js';

const { buffer, fd, intervalMs, orphanGraceMs } = workerData as WatchdogOptions & { buffer: SharedArrayBuffer };
const board = new ActivityBoard(buffer);

const timer = setInterval(() => {
  const { user, system } = process.cpuUsage();
  const beat: Heartbeat = { ...board.read(), rss: process.memoryUsage.rss(), cpu: user + system };
  try {
    writeSync(fd, `${JSON.stringify(beat)}\n`);
  } catch {
    // The master is gone. The main thread leaves on its own when its IPC channel
    // closes; if its loop is blocked it cannot, so end the process after a grace.
    clearInterval(timer);
    setTimeout(() => process.kill(process.pid, 'SIGKILL'), orphanGraceMs);
  }
}, intervalMs);
