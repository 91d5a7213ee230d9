// `systemctl restart` under load refuses no connection: the listening sockets
// belong to tsgunicorn@myapp.socket, so connections queue in the kernel while
// the service is down and the new master's workers accept them.
import { describe, expect, it } from 'vitest';
import { diagnose, installExampleApp, property, start, useMachine } from './fixture.js';
import { SUITES, sleep } from './harness.js';
import { load } from '../helpers/http.js';

const unit = 'tsgunicorn@myapp.service';

describe.each(SUITES)('%s: systemctl restart under load', (suite) => {
  const machine = useMachine(suite);

  it('refuses no connection of 20 looping clients over 10 s', async () => {
    const m = machine();
    await installExampleApp(m);
    await start(m, unit);
    const mainPid = await property(m, unit, 'MainPID');

    const running = load({ url: 'http://127.0.0.1:8000/', clients: 20, durationMs: 10_000, total: 20 * 5_000 });
    await sleep(3_000);
    const restart = await m.systemctl('restart', unit);
    const result = await running;

    console.log(`[${suite}] restart under load: ${JSON.stringify(result)}`);
    const report = `restart exit ${restart.code} ${restart.stderr.trim()}; load: ${JSON.stringify(result)}`;
    if (restart.code !== 0 || result.reasons.ECONNREFUSED) throw new Error(`${report}\n${await diagnose(m, unit)}`);
    expect(result.reasons.ECONNREFUSED ?? 0).toBe(0);
    expect(result.ok).toBeGreaterThan(0);
    expect(await property(m, unit, 'ActiveState')).toBe('active');
    expect(await property(m, unit, 'MainPID')).not.toBe(mainPid);
  });
});
