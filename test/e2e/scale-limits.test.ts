// `tsgunicorn scale` under the packaged unit. A count past 1024 is refused before
// it reaches the server; one the unit's TasksMax= cannot hold costs the workers
// that do not fit, never the master: the refused forks are logged once, and the
// master keeps pinging systemd's watchdog (no SIGABRT, no restart) and serving.
import { describe, expect, it } from 'vitest';
import { diagnose, installExampleApp, property, start, useMachine, waitServing } from './fixture.js';
import { SUITES, waitFor } from './harness.js';
import { request } from '../helpers/http.js';

const unit = 'tsgunicorn@myapp.service';
const URL = 'http://127.0.0.1:8000/';

describe.each(SUITES)('%s: scale past the unit limits', (suite) => {
  const machine = useMachine(suite);

  it('scale 1025 exits 2; scale 1024 past TasksMax= logs the refused forks once while the master pings the watchdog and serves', async () => {
    const m = machine();
    await installExampleApp(m);
    await m.run(['mkdir', '-p', `/etc/systemd/system/${unit}.d`]);
    await m.writeFile(`/etc/systemd/system/${unit}.d/tasks.conf`, '[Service]\nTasksMax=64\n');
    await m.run(['systemctl', 'daemon-reload']);
    await start(m, unit);
    await waitServing(m, unit, URL, 10_000);
    const mainPid = await property(m, unit, 'MainPID');

    const refused = await m.exec(['tsgunicorn', 'scale', 'myapp', '1025']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe("tsgunicorn: error: scale: N must be a whole number from 1 to 1024, not '1025'\n");
    expect(await m.run(['tsgunicorn', 'scale', 'myapp', '1024'])).toBe('Scaling to 1024 workers\n');

    const journal = async () => (await m.journal(unit)).stdout;
    await waitFor(
      async () => (/Cannot start a worker: spawn .*EAGAIN/.test(await journal()) ? true : undefined),
      60_000,
      () => `[${suite}] no refused fork logged`,
      500,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose(m, unit)}`);
    });
    // Three watchdog pings after that (WatchdogSec=10s, pinged every 5 s): the master's loop runs, and it thinks a
    // worker serves. Each ping is an event systemd records.
    const pings = new Set<string>([await property(m, unit, 'WatchdogTimestampMonotonic')]);
    await waitFor(
      async () => {
        pings.add(await property(m, unit, 'WatchdogTimestampMonotonic'));
        return pings.size > 3 ? true : undefined;
      },
      60_000,
      () => `[${suite}] watchdog pings seen: ${pings.size - 1}`,
      500,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose(m, unit)}`);
    });
    expect(await property(m, unit, 'MainPID')).toBe(mainPid);
    expect(await property(m, unit, 'NRestarts')).toBe('0');
    expect(await property(m, unit, 'ActiveState')).toBe('active');
    const log = await journal();
    expect(log.match(/Cannot start a worker/g), log).toHaveLength(1);
    expect(log).not.toMatch(/[Ww]atchdog timeout/);
    expect((await request(URL)).status).toBe(200);
  });
});
