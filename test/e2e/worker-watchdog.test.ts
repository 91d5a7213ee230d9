// The packaged native/watchdog under the unit's sandbox: every worker of an
// installed instance writes its heartbeats from the native thread, not from a
// node:worker_threads thread with its own V8 isolate (src/worker/watchdog/start.ts).
import { describe, expect, it } from 'vitest';
import { diagnose, installExampleApp, property, start, unitPids, useMachine } from './fixture.js';
import { SUITES, waitFor, type Machine } from './harness.js';

const unit = 'tsgunicorn@myapp.service';

/** The names of a process's threads (/proc/PID/task/TID/comm). */
async function threadNames(m: Machine, pid: number): Promise<string[]> {
  return (await m.run(['sh', '-c', 'cat /proc/"$1"/task/*/comm', 'sh', String(pid)])).split('\n').filter(Boolean);
}

describe.each(SUITES)('%s: worker heartbeats', (suite) => {
  const machine = useMachine(suite);

  it('every worker runs the native watchdog thread', async () => {
    const m = machine();
    await installExampleApp(m);
    await start(m, unit);
    const master = Number(await property(m, unit, 'MainPID'));
    const workers = (await unitPids(m, unit)).filter((pid) => pid !== master);
    expect(workers.length).toBeGreaterThan(0);
    for (const pid of workers) {
      // The thread starts right after the worker reports ready.
      const threads = await waitFor(
        async () => {
          const names = await threadNames(m, pid);
          return names.includes('tsg-watchdog') ? names : undefined;
        },
        5_000,
        () => `worker ${pid} has no tsg-watchdog thread`,
      ).catch(async (err: Error) => {
        throw new Error(`${err.message}: ${(await threadNames(m, pid)).join(', ')}\n${await diagnose(m, unit)}`);
      });
      // Node names the threads of node:worker_threads so.
      expect(threads).not.toContain('WorkerThread');
    }
  });
});
