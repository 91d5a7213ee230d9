// `systemctl reload` (SIGHUP) swaps in new code with no failed request: new
// workers start on the inherited sockets before the old ones drain and exit.
import { describe, expect, it } from 'vitest';
import { EXAMPLE_GREETING, diagnose, installExampleApp, start, useMachine } from './fixture.js';
import { SUITES, sleep } from './harness.js';
import { load, request } from '../helpers/http.js';

const unit = 'tsgunicorn@myapp.service';
const NEW_GREETING = 'Reloaded, tsgunicorn!';

describe.each(SUITES)('%s: systemctl reload under load', (suite) => {
  const machine = useMachine(suite);

  it('fails no request of 20 looping clients over 10 s, and serves the edited code afterwards', async () => {
    const m = machine();
    await installExampleApp(m);
    await start(m, unit);
    const mainPid = (await m.run(['systemctl', 'show', '-p', 'MainPID', '--value', unit])).trim();

    const running = load({ url: 'http://127.0.0.1:8000/', clients: 20, durationMs: 10_000, total: 20 * 5_000 });
    await sleep(3_000);
    await m.run(['sed', '-i', `s/${EXAMPLE_GREETING}/${NEW_GREETING}/`, '/srv/myapp/app.ts']);
    await m.run(['grep', '-q', NEW_GREETING, '/srv/myapp/app.ts']);
    const reload = await m.systemctl('reload', unit);
    const result = await running;

    console.log(`[${suite}] reload under load: ${JSON.stringify(result)}`);
    const report = `reload exit ${reload.code} ${reload.stderr.trim()}; load: ${JSON.stringify(result)}`;
    if (reload.code !== 0 || result.failed !== 0) throw new Error(`${report}\n${await diagnose(m, unit)}`);
    expect(result.ok).toBeGreaterThan(0);
    // A reload keeps the master: only the workers are replaced.
    expect((await m.run(['systemctl', 'show', '-p', 'MainPID', '--value', unit])).trim()).toBe(mainPid);
    expect((await request('http://127.0.0.1:8000/')).body).toContain(NEW_GREETING);
  });
});
