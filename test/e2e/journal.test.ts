// Logging to journald: the master's start lines, one structured entry per
// request with `accesslog = -`, and an app exception as one entry with its stack.
import { describe, expect, it } from 'vitest';
import { diagnose, installExampleApp, journalEntries, property, start, useMachine } from './fixture.js';
import { SUITES, waitFor } from './harness.js';
import { get } from './http.js';

const unit = 'tsgunicorn@myapp.service';
const USER_AGENT = 'tsgunicorn-e2e/1';

// A node:http app with a route that throws, for the error log.
const APP = `import type { IncomingMessage, ServerResponse } from 'node:http';

export default function app(req: IncomingMessage, res: ServerResponse): void {
  if (req.url === '/boom') throw new Error('e2e boom from the app');
  res.end('ok\\n');
}
`;
const CONFIG = `; written by the e2e journal test
app = /srv/myapp/app.ts
accesslog = -
`;

describe.each(SUITES)('%s: journal', (suite) => {
  const machine = useMachine(suite);

  it('journalctl -u shows the master\'s start lines', async () => {
    const m = machine();
    await installExampleApp(m);
    await start(m, unit);
    const mainPid = await property(m, unit, 'MainPID');
    const fromMaster = (await journalEntries(m, unit)).filter((e) => e._PID === mainPid).map((e) => e.MESSAGE);
    if (!fromMaster.some((msg) => /listening/i.test(msg!))) {
      throw new Error(`no "Listening" line from the master (pid ${mainPid}) in the journal\n${await diagnose(m, unit)}`);
    }
    await m.run(['systemctl', 'stop', unit]);
  });

  it('with accesslog = -, journals one entry per request with the HTTP_* fields', async () => {
    const m = machine();
    await m.writeFile('/srv/myapp/app.ts', APP);
    await m.writeFile('/etc/tsgunicorn/myapp.ini', CONFIG);
    await start(m, unit);
    const mainPid = await property(m, unit, 'MainPID');
    const paths = [1, 2, 3, 4, 5].map((i) => `/e2e-access-${i}`);
    for (const p of paths) {
      expect((await get(`http://127.0.0.1:8000${p}`, { headers: { 'user-agent': USER_AGENT } })).status).toBe(200);
    }

    const entries = await waitFor(
      async () => {
        const found = (await journalEntries(m, unit, 'HTTP_STATUS=200')).filter((e) => paths.includes(e.HTTP_PATH!));
        return found.length >= paths.length ? found : undefined;
      },
      10_000,
      () => `fewer than ${paths.length} access entries in journalctl -u ${unit} HTTP_STATUS=200`,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose(m, unit)}`);
    });
    expect(entries.map((e) => e.HTTP_PATH).sort()).toEqual(paths);
    for (const e of entries) {
      expect(e).toMatchObject({ HTTP_METHOD: 'GET', HTTP_STATUS: '200', REMOTE_ADDR: '127.0.0.1', USER_AGENT });
      expect(e.HTTP_DURATION_US).toMatch(/^\d+$/);
      expect(Number(e.HTTP_BYTES)).toBeGreaterThanOrEqual('ok\n'.length);
      expect(e.WORKER_PID).toMatch(/^\d+$/);
      expect(e.WORKER_PID).not.toBe(mainPid);
    }
  });

  it('journals an exception thrown by the app as one err entry with its stack', async () => {
    const m = machine();
    expect((await get('http://127.0.0.1:8000/boom')).status).toBe(500);
    const errors = await waitFor(
      async () => {
        const found = (await journalEntries(m, unit, '-p', 'err')).filter((e) => e.MESSAGE?.includes('e2e boom from the app'));
        return found.length ? found : undefined;
      },
      10_000,
      () => `no entry with the exception in journalctl -u ${unit} -p err`,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose(m, unit)}`);
    });
    expect(errors).toHaveLength(1);
    expect(errors[0]!.MESSAGE).toMatch(/\n\s+at .*\/srv\/myapp\/app\.ts/);
    // The stack is inside that entry, not split into entries of its own.
    const strayFrames = (await journalEntries(m, unit, '-p', 'err')).filter((e) => /^\s*at /.test(e.MESSAGE ?? ''));
    expect(strayFrames).toEqual([]);
  });
});
