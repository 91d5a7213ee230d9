// Runs on its own thread inside each worker process and reports to the master over
// the heartbeat pipe. Being off the main thread, it keeps reporting while the app
// blocks the event loop, so the master sees the stalled tick and the hung request.
import { writeSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import type { Heartbeat } from '../ipc.js';
import { ActivityBoard } from './activity-board.js';

const { buffer, fd, intervalMs, orphanGraceMs } = workerData as {
  buffer: SharedArrayBuffer;
  fd: number;
  intervalMs: number;
  orphanGraceMs: number;
};
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
