// `systemctl start` is synchronous with readiness: Type=notify, so it returns
// only after the master's READY=1, when the workers already serve.
import { describe, expect, it } from 'vitest';
import { EXAMPLE_GREETING, diagnose, installExampleApp, property, start, useMachine } from './fixture.js';
import { SUITES } from './harness.js';
import { attempt } from '../helpers/http.js';

const unit = 'tsgunicorn@myapp.service';

describe.each(SUITES)('%s: systemctl start tsgunicorn@myapp', (suite) => {
  const machine = useMachine(suite);

  it('returns once 127.0.0.1:8000 serves the app: a request right after it gets 200', async () => {
    const m = machine();
    await installExampleApp(m);
    await start(m, unit);
    const r = await attempt('http://127.0.0.1:8000/');
    if (!r.ok) throw new Error(`request right after systemctl start failed: ${r.reason}\n${await diagnose(m, unit)}`);
    expect(r.reply.body).toContain(EXAMPLE_GREETING);
  });

  it("shows the master's STATUS= text, with its workers, in systemctl status", async () => {
    const m = machine();
    const status = await m.systemctl('status', unit);
    expect(status.stdout).toMatch(/^\s*Status: ".*workers.*"$/m);
    expect(await property(m, unit, 'Type')).toBe('notify');
  });
});
