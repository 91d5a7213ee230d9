// Logging to journald: the master's start lines, one structured entry per
// request with `accesslog = -` (with its trace, when the request has one; none
// lost to journald's rate limit), and an app
// exception as one entry with its stack.
import { describe, expect, it } from 'vitest';
import { diagnose, installExampleApp, journalEntries, property, start, useMachine } from './fixture.js';
import { SUITES, waitFor } from './harness.js';
import { load, request } from '../helpers/http.js';

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

  it("journalctl -u shows the master's start lines", async () => {
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
      expect((await request(`http://127.0.0.1:8000${p}`, { headers: { 'user-agent': USER_AGENT } })).status).toBe(200);
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

    // A request in a W3C trace: its entry names the trace; a malformed traceparent (uppercase hex) adds nothing.
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    expect((await request('http://127.0.0.1:8000/e2e-traced', { headers: { traceparent } })).status).toBe(200);
    expect((await request('http://127.0.0.1:8000/e2e-badly-traced', { headers: { traceparent: traceparent.toUpperCase() } })).status).toBe(
      200,
    );
    const [traced, badlyTraced] = await waitFor(
      async () => {
        const found = await journalEntries(m, unit, 'HTTP_STATUS=200');
        const byPath = (p: string) => found.find((e) => e.HTTP_PATH === p);
        const pair = [byPath('/e2e-traced'), byPath('/e2e-badly-traced')];
        return pair[0] && pair[1] ? pair : undefined;
      },
      10_000,
      () => `no access entries for /e2e-traced and /e2e-badly-traced in journalctl -u ${unit}`,
    );
    expect(traced).toMatchObject({ TRACE_ID: '4bf92f3577b34da6a3ce929d0e0e4736', SPAN_ID: '00f067aa0ba902b7' });
    expect(badlyTraced).not.toHaveProperty('TRACE_ID');
    expect(badlyTraced).not.toHaveProperty('SPAN_ID');
  });

  it("loses no access entry to journald's rate limit in a burst of thousands of requests", async () => {
    const m = machine();
    // journald's limit lowered to 100 entries per 30 s (at most 7× that with free
    // disk space), so that a burst of a few seconds exceeds it; the unit's own
    // limit must be the one that applies.
    await m.writeFile('/etc/systemd/journald.conf.d/e2e-low-limit.conf', '[Journal]\nRateLimitIntervalSec=30s\nRateLimitBurst=100\n');
    try {
      await m.run(['systemctl', 'restart', 'systemd-journald.service']);
      const path = '/e2e-burst';
      const result = await load({ url: `http://127.0.0.1:8000${path}`, clients: 16, durationMs: 20_000, total: 16 * 200 });
      expect(result.failed).toBe(0);
      expect(result.ok).toBeGreaterThan(1_000);
      const stored = async () => (await journalEntries(m, unit, `HTTP_PATH=${path}`)).length;
      await waitFor(
        async () => ((await stored()) >= result.ok ? true : undefined),
        20_000,
        () => `fewer than ${result.ok} access entries for ${path} in journalctl -u ${unit}`,
        500,
      ).catch(async (err: Error) => {
        const suppressed = await m
          .run(['journalctl', '-u', 'systemd-journald.service', '--grep', 'Suppressed', '--no-pager'])
          .catch(() => '');
        throw new Error(`${err.message} (found ${await stored()})\n${suppressed}`);
      });
      expect(await stored()).toBe(result.ok);
    } finally {
      await m.run(['rm', '/etc/systemd/journald.conf.d/e2e-low-limit.conf']);
      await m.run(['systemctl', 'restart', 'systemd-journald.service']);
    }
  });

  it('journals an exception thrown by the app as one err entry with its stack', async () => {
    const m = machine();
    expect((await request('http://127.0.0.1:8000/boom')).status).toBe(500);
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
