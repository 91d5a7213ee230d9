// WatchdogSec=: a master that stops sending WATCHDOG=1 (here: frozen with
// SIGSTOP) is killed and restarted by systemd, and the app serves again.
import { describe, expect, it } from 'vitest';
import { diagnose, installExampleApp, property, start, useMachine } from './fixture.js';
import { SUITES, waitFor } from './harness.js';
import { attempt } from '../helpers/http.js';

const unit = 'tsgunicorn@myapp.service';

/** A time span as systemctl show prints it (systemd.time(7)), e.g. "10s", "1min 30s", "500ms". */
function timespanMs(text: string): number {
  const unitMs: Record<string, number> = { us: 0.001, ms: 1, s: 1_000, min: 60_000, h: 3_600_000 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)\s*(us|ms|s|min|h)\b/g)];
  if (parts.length === 0) throw new Error(`not a time span: ${JSON.stringify(text)}`);
  return parts.reduce((sum, [, n, u]) => sum + Number(n) * unitMs[u!]!, 0);
}

describe.each(SUITES)('%s: watchdog', (suite) => {
  const machine = useMachine(suite);

  it('restarts a frozen master within WatchdogSec + 5 s, and it serves again', async () => {
    const m = machine();
    await installExampleApp(m);
    await start(m, unit);
    const watchdogMs = timespanMs(await property(m, unit, 'WatchdogUSec'));
    expect(watchdogMs).toBeGreaterThan(0);
    const frozenPid = await property(m, unit, 'MainPID');
    const restartsBefore = Number(await property(m, unit, 'NRestarts'));

    await m.run(['kill', '-STOP', frozenPid]);
    const frozenAt = Date.now();
    const bound = watchdogMs + 5_000;
    const servingAgain = await waitFor(
      async () => {
        const [state, pid] = await Promise.all([property(m, unit, 'ActiveState'), property(m, unit, 'MainPID')]);
        if (state !== 'active' || pid === frozenPid || pid === '0') return undefined;
        const r = await attempt('http://127.0.0.1:8000/', { timeoutMs: 2_000 });
        return r.ok ? Date.now() : undefined;
      },
      bound + 20_000,
      () => `[${suite}] not serving again from a new master ${(bound + 20_000) / 1000} s after SIGSTOP of ${frozenPid}`,
      200,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose(m, unit)}`);
    });

    const took = servingAgain - frozenAt;
    console.log(`[${suite}] serving again ${took} ms after SIGSTOP of the master (bound ${bound} ms)`);
    if (took > bound) throw new Error(`serving again took ${took} ms, over WatchdogSec + 5 s = ${bound} ms\n${await diagnose(m, unit)}`);
    expect(Number(await property(m, unit, 'NRestarts'))).toBe(restartsBefore + 1);
    // systemd logs why it killed the master.
    expect((await m.journal(unit, '--no-hostname')).stdout).toMatch(/[Ww]atchdog timeout/);
  });
});
