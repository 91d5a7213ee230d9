// The shared memory a worker's watchdog thread reads while the main thread may be blocked.
import { Worker } from 'node:worker_threads';
import { expect, it } from 'vitest';
import { ActivityBoard } from '../../src/worker/activity-board.js';

it('another thread reads the oldest request and the tick while this thread is blocked', async () => {
  const board = new ActivityBoard();
  board.setOldest('GET', '/slow?id=7', 1234.5);
  board.setInFlight(3);
  board.tick();
  board.tick();
  const reader = new Worker(
    `const { workerData, parentPort } = require('node:worker_threads');
     const view = new Int32Array(workerData, 0, 1);
     // Reads while the main thread spins.
     setTimeout(() => parentPort.postMessage(Atomics.load(view, 0)), 50);`,
    { eval: true, workerData: board.buffer },
  );
  const tick = await new Promise((resolve) => reader.once('message', resolve));
  await reader.terminate();
  expect(tick).toBe(2);
  expect(new ActivityBoard(board.buffer).read()).toEqual({ tick: 2, inFlight: 3, oldest: { label: 'GET /slow?id=7', startedAt: 1234.5 } });
  board.clearOldest();
  expect(board.read().oldest).toBeNull();
});

it('cuts an overlong URL without breaking a character', () => {
  const board = new ActivityBoard();
  board.setOldest('POST', `/${'é'.repeat(1000)}`, 1);
  const label = board.read().oldest!.label;
  expect(label.startsWith('POST /éé')).toBe(true);
  expect(label).not.toContain('\ufffd');
});

it('shows each new oldest request, whether its route repeats or changes', () => {
  const board = new ActivityBoard();
  const seen = [
    ['GET', '/a', 1],
    ['GET', '/a', 2],
    ['POST', '/a', 3],
    ['POST', '/longer/path?q=1', 4],
    ['GET', '/a', 5],
  ].map(([method, url, at]) => {
    board.setOldest(method as string, url as string, at as number);
    return board.read().oldest;
  });
  expect(seen).toEqual([
    { label: 'GET /a', startedAt: 1 },
    { label: 'GET /a', startedAt: 2 },
    { label: 'POST /a', startedAt: 3 },
    { label: 'POST /longer/path?q=1', startedAt: 4 },
    { label: 'GET /a', startedAt: 5 },
  ]);
});

it('never reads the oldest request while a writer is mid-update, also once the sequence counter wrapped', () => {
  const board = new ActivityBoard();
  board.setOldest('GET', '/a', 1);
  const seq = new Int32Array(board.buffer, 4, 1);
  for (const midUpdate of [2 ** 31 - 1, -1]) {
    seq[0] = midUpdate;
    expect(board.read().oldest).toBeNull();
  }
});
