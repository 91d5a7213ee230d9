// A worker's watchdog: heartbeats from native/watchdog's thread and from its
// node:worker_threads fallback are the same lines from the same board, go on
// while the main thread is blocked, and end the process once the master is gone;
// a worker runs the native one when the addon is built.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Heartbeat, OldestRequest } from '../../src/ipc.js';
import { ActivityBoard } from '../../src/worker/activity-board.js';
import { FIXTURES, HELLO_APP, ROOT, serversStoppedAfterEach, workerPids } from '../helpers/tsgunicorn.js';
import { until } from '../helpers/wait.js';

const NATIVE_WATCHDOG = path.join(ROOT, 'native/watchdog/build/Release/watchdog.node');

const start = serversStoppedAfterEach();

interface BoardContents {
  ticks: number;
  inFlight: number;
  oldest: { method: string; url: string; startedAt: number } | null;
  /** The sequence counter as a writer caught mid-update leaves it. */
  seq?: number;
}

interface SourceRun {
  /** The first heartbeat lines, as written. */
  lines: string[];
  /** The process's own readings, just before it blocked its loop. */
  before: { rss: number; cpu: number };
  /** How the process ended after the reading end of its heartbeat pipe closed. */
  exit: { code: number | null; signal: NodeJS.Signals | null };
}

async function runSource(source: 'native' | 'thread', contents: BoardContents): Promise<SourceRun> {
  const child = spawn(process.execPath, [path.join(FIXTURES, 'heartbeat-source.mjs'), source, JSON.stringify(contents)], {
    stdio: ['ignore', 'pipe', 'inherit', 'pipe'],
  });
  // Not SIGKILL: that is how the process must end itself.
  const killer = setTimeout(() => child.kill('SIGTERM'), 10_000);
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const before = JSON.parse(String((await once(child.stdout!, 'data'))[0])) as SourceRun['before'];
  const pipe = child.stdio[3] as Readable;
  pipe.setEncoding('utf8');
  let text = '';
  for await (const chunk of pipe) {
    text += chunk as string;
    if (text.split('\n').length > 4) break;
  }
  pipe.destroy();
  const [code, signal] = await exited;
  clearTimeout(killer);
  return { lines: text.split('\n').slice(0, 4), before, exit: { code, signal } };
}

/** What the fallback reads from such a board, in this process. */
function expectedActivity(contents: BoardContents): Pick<Heartbeat, 'tick' | 'inFlight' | 'oldest'> {
  const board = new ActivityBoard();
  for (let i = 0; i < contents.ticks; i++) board.tick();
  board.setInFlight(contents.inFlight);
  if (contents.oldest) board.setOldest(contents.oldest.method, contents.oldest.url, contents.oldest.startedAt);
  if (contents.seq !== undefined) new Int32Array(board.buffer)[1] = contents.seq;
  return board.read();
}

const cases: Array<[string, BoardContents]> = [
  ['no request in flight', { ticks: 0, inFlight: 0, oldest: null }],
  ['a plain request', { ticks: 5, inFlight: 3, oldest: { method: 'GET', url: '/slow?id=7', startedAt: 1_764_620_000_123.456 } }],
  [
    'quotes, backslashes, control characters and UTF-8 cut at the end of the slot',
    {
      ticks: 2,
      inFlight: 1,
      // 13 bytes before the 2-byte characters: the 400-byte URL slot ends inside one.
      oldest: { method: 'P"\\T', url: `/a"b\\c\t\n\u0001\u001f\u007f${'é'.repeat(300)}`, startedAt: 0.1 },
    },
  ],
  [
    'a writer mid-update once the sequence counter wrapped',
    { ticks: 1, inFlight: 1, oldest: { method: 'GET', url: '/a', startedAt: 1 }, seq: -1 },
  ],
];

describe('heartbeat sources', () => {
  it('native/watchdog is built (npm ci and the test setup build it)', () => {
    expect(existsSync(NATIVE_WATCHDOG), `${NATIVE_WATCHDOG} missing: run node packaging/build-addons.mjs`).toBe(true);
  });

  it.each(cases)(
    '%s: the native thread writes what the fallback writes, while the loop is blocked, and kills an orphaned process',
    async (_, contents) => {
      const expected = expectedActivity(contents);
      if (contents.oldest?.url.includes('é')) {
        const label = (expected.oldest as OldestRequest).label;
        expect(Buffer.byteLength(label) - Buffer.byteLength(`${contents.oldest.method} `)).toBe(399);
        expect(label).not.toContain('\ufffd');
      }
      const runs = { native: await runSource('native', contents), thread: await runSource('thread', contents) };
      for (const [source, run] of Object.entries(runs)) {
        expect(run.lines, source).toHaveLength(4);
        const beats = run.lines.map((line) => JSON.parse(line) as Heartbeat);
        for (const beat of beats) {
          const { rss, cpu, ...activity } = beat;
          // The loop is blocked: the tick stays, the heartbeats go on.
          expect(activity, source).toEqual(expected);
          expect(rss, source).toBeGreaterThan(run.before.rss / 2);
          expect(rss, source).toBeLessThan(run.before.rss * 2);
          expect(cpu, source).toBeGreaterThanOrEqual(run.before.cpu);
        }
        // The blocked loop burns CPU between the beats.
        expect(beats[3]!.cpu, source).toBeGreaterThan(beats[0]!.cpu);
        expect(run.exit, source).toEqual({ code: null, signal: 'SIGKILL' });
      }
      // Byte for byte, apart from the process-wide readings.
      const masked = (lines: string[]) => lines.map((line) => line.replace(/"rss":\d+,"cpu":\d+/, '"rss":0,"cpu":0'));
      expect(masked(runs.native.lines)).toEqual(masked(runs.thread.lines));
    },
  );
});

describe('a worker', () => {
  it('runs the native watchdog thread, not a second V8 isolate', async () => {
    const server = await start(['-w', '1', '--log-level', 'debug', HELLO_APP]);
    await server.waitFor(/Heartbeats from the native watchdog thread/);
    const [pid] = await workerPids(server.proc.pid!);
    // The thread names itself once it runs, which on a loaded machine can be after the log line.
    const names = () => readdirSync(`/proc/${pid}/task`).map((tid) => readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim());
    const threads = await until('a thread named tsg-watchdog', () => names().includes('tsg-watchdog') && names());
    expect(threads).toContain('tsg-watchdog');
    // Node names the threads of node:worker_threads so.
    expect(threads).not.toContain('WorkerThread');
  });
});
