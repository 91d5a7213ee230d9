// The health check on real systemd: STATUS= carries live numbers, and an app
// whose /health keeps failing gets its workers replaced, then (still failing)
// the watchdog pings stop and systemd restarts the service.
import { describe, expect, it } from 'vitest';
import { diagnose, property, start, useMachine } from './fixture.js';
import { SUITES, waitFor } from './harness.js';
import { request } from '../helpers/http.js';

const unit = 'tsgunicorn@sick.service';

// /health answers 503 while /srv/sick/failing exists; / answers with the pid.
const app = `import { existsSync } from 'node:fs';
export function app(req, res) {
  if (req.url === '/health') {
    const failing = existsSync('/srv/sick/failing');
    res.writeHead(failing ? 503 : 200).end(failing ? 'sick' : 'OK');
    return;
  }
  res.end(String(process.pid));
}
`;

const ini = `app = /srv/sick/app.mjs
workers = 2
health_check_path = /health
health_check_initial_delay = 0
health_check_period = 0.5
health_check_timeout = 1
health_check_failure_threshold = 3
`;

describe.each(SUITES)('%s: health check and status', (suite) => {
  const machine = useMachine(suite);

  it('shows live numbers in systemctl status, then restarts a persistently unhealthy service via the watchdog', async () => {
    const m = machine();
    await m.writeFile('/srv/sick/app.mjs', app);
    await m.writeFile('/etc/tsgunicorn/sick.ini', ini);
    await m.run(['systemctl', 'daemon-reload']);
    await start(m, unit);
    for (let i = 0; i < 30; i++) expect((await request('http://127.0.0.1:8000/')).status).toBe(200);

    // STATUS= is refreshed every 5 s with the request count and health.
    const status = await waitFor(
      async () => {
        const text = await property(m, unit, 'StatusText');
        // At least the 30 requests above (the probes count too), a rate, and the health.
        const requests = Number(/ · ([\d,]+) requests · /.exec(text)?.[1]?.replace(/,/g, '') ?? 0);
        return /^2\/2 workers ready · .* req\/s( · .*)? · healthy$/.test(text) && requests >= 30 ? text : undefined;
      },
      15_000,
      () => `[${suite}] no live STATUS line`,
      500,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose(m, unit)}`);
    });
    console.log(`[${suite}] systemctl status shows: ${status}`);

    const firstMaster = await property(m, unit, 'MainPID');
    const restartsBefore = Number(await property(m, unit, 'NRestarts'));
    await m.run(['touch', '/srv/sick/failing']);
    const failingSince = Date.now();
    // First the workers are replaced…
    await waitFor(
      async () => ((await m.journal(unit, '--no-hostname')).stdout.includes('replacing all workers') ? true : undefined),
      15_000,
      () => `[${suite}] workers not replaced for health`,
      500,
    );
    // …then, still failing, the watchdog fires and systemd starts a new master.
    const restartedAt = await waitFor(
      async () => {
        const [restarts, pid] = await Promise.all([property(m, unit, 'NRestarts'), property(m, unit, 'MainPID')]);
        return Number(restarts) > restartsBefore && pid !== firstMaster && pid !== '0' ? Date.now() : undefined;
      },
      60_000,
      () => `[${suite}] no restart by the watchdog`,
      500,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose(m, unit)}`);
    });
    console.log(`[${suite}] unhealthy app restarted by systemd ${restartedAt - failingSince} ms after /health began failing`);
    const journal = (await m.journal(unit, '--no-hostname')).stdout;
    expect(journal).toMatch(/stopping watchdog pings/);
    expect(journal).toMatch(/[Ww]atchdog timeout/);
    await m.run(['rm', '/srv/sick/failing']);
    await m.systemctl('stop', unit, 'tsgunicorn@sick.socket');
  });
});
