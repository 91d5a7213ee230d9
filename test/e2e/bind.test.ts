// What is served vs what is printed: an instance listens where its socket unit
// does. --print-config shows those addresses with their source, and when the
// ini's bind was edited without restarting the socket unit, the master warns
// with the exact command that applies it.
import { describe, expect, it } from 'vitest';
import { diagnose, installExampleApp, start, useMachine } from './fixture.js';
import { SUITES, waitFor } from './harness.js';
import { request } from '../helpers/http.js';

const unit = 'tsgunicorn@myapp.service';
const apply = 'sudo systemctl daemon-reload && sudo systemctl restart tsgunicorn@myapp.socket tsgunicorn@myapp.service';

describe.each(SUITES)('%s: bind and the socket unit', (suite) => {
  const machine = useMachine(suite);

  it("--print-config of an instance without ini prints the socket unit's address, with its source", async () => {
    const m = machine();
    await installExampleApp(m);
    const printed = await m.run(['tsgunicorn', '--instance', 'myapp', '--print-config']);
    expect(printed).toMatch(/^bind = \[::\]:8000 +; tsgunicorn@myapp\.socket \(systemd's sockets take precedence over bind\)$/m);
  });

  it('a bind edited without restarting the socket unit: a warning with the command, in the journal and --print-config', async () => {
    const m = machine();
    await start(m, unit);
    await m.writeFile('/etc/tsgunicorn/myapp.ini', 'bind = 127.0.0.1:9001\n');
    await m.run(['systemctl', 'restart', unit]);
    const warning = `bind = 127.0.0.1:9001 (/etc/tsgunicorn/myapp.ini:1) is not where the sockets from tsgunicorn@myapp.socket listen ([::]:8000): serving on those; to apply bind: ${apply}`;
    await waitFor(
      async () => ((await m.journal(unit, '-p', 'warning')).stdout.includes(warning) ? true : undefined),
      10_000,
      () => `no warning "${warning}"`,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose(m, unit)}`);
    });
    expect((await request('http://127.0.0.1:8000/')).status).toBe(200);
    expect(await m.run(['tsgunicorn', '--instance', 'myapp', '--print-config'])).toContain(`\n; ${warning}\n`);

    // The command it gives applies bind, and the warning is gone.
    await m.run(['sh', '-c', apply.replaceAll('sudo ', '')]);
    expect((await request('http://127.0.0.1:9001/')).status).toBe(200);
    expect(await m.run(['tsgunicorn', '--instance', 'myapp', '--print-config'])).toMatch(
      /^bind = 127\.0\.0\.1:9001 +; tsgunicorn@myapp\.socket/m,
    );
    await m.run(['systemctl', 'stop', unit, 'tsgunicorn@myapp.socket']);
  });
});
