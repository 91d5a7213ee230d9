// Signals as an administrator sends them: `systemctl kill` signals every process
// of the unit, so each signal the master handles also reaches the workers. A
// USR1 (log rotation) must reopen the log files and open no inspector anywhere
// (one would let any local user run code as the service user); the master's
// other signals must neither stop nor end a worker.
import { describe, expect, it } from 'vitest';
import { diagnose, EXAMPLE_APP, listeningPorts, property, start, unitPids, useMachine } from './fixture.js';
import { SUITES, sleep, waitFor, type Machine } from './harness.js';
import { request } from '../helpers/http.js';

const unit = 'tsgunicorn@myapp.service';
const logDir = '/var/log/tsgunicorn/myapp';
const CONFIG = `app = ${EXAMPLE_APP}
workers = 2
accesslog = ${logDir}/access.log
errorlog = ${logDir}/error.log
`;

async function fileText(m: Machine, file: string): Promise<string> {
  const r = await m.exec(['cat', file]);
  return r.code === 0 ? r.stdout : '';
}

describe.each(SUITES)('%s: signals to every process of the unit', (suite) => {
  const machine = useMachine(suite);

  it('systemctl kill -s USR1 reopens the log files and opens no inspector', async () => {
    const m = machine();
    await m.writeFile('/etc/tsgunicorn/myapp.ini', CONFIG);
    await start(m, unit);
    expect((await request('http://127.0.0.1:8000/?before-rotation')).status).toBe(200);
    await waitFor(
      async () => ((await fileText(m, `${logDir}/access.log`)).includes('/?before-rotation') ? true : undefined),
      5_000,
      () => 'no access line',
    );
    const pids = await unitPids(m, unit);
    expect(pids.length).toBeGreaterThanOrEqual(3);

    // What logrotate does: move the files away, then signal.
    await m.run(['mv', `${logDir}/access.log`, `${logDir}/access.log.1`]);
    await m.run(['mv', `${logDir}/error.log`, `${logDir}/error.log.1`]);
    await m.run(['systemctl', 'kill', '-s', 'USR1', unit]);
    await sleep(1_000);

    const ports = await listeningPorts(m, unit);
    if (ports.join() !== '8000') throw new Error(`listening ports of ${unit} after USR1: ${ports.join(', ')}\n${await diagnose(m, unit)}`);
    expect(await unitPids(m, unit)).toEqual(pids);
    expect((await m.journal(unit)).stdout).not.toMatch(/Debugger listening/);

    expect((await request('http://127.0.0.1:8000/?after-rotation')).status).toBe(200);
    await waitFor(
      async () => ((await fileText(m, `${logDir}/access.log`)).includes('/?after-rotation') ? true : undefined),
      5_000,
      () => `no new ${logDir}/access.log with the request after USR1`,
    );
    expect(await fileText(m, `${logDir}/access.log.1`)).not.toContain('/?after-rotation');
    expect(await fileText(m, `${logDir}/error.log.1`)).toMatch(/Handling signal: usr1/);
    expect((await m.exec(['test', '-f', `${logDir}/error.log`])).code).toBe(0);
    await m.run(['systemctl', 'stop', unit]);
  });

  it('TTIN, TTOU and USR2 sent to every process stop or end no process', async () => {
    const m = machine();
    await m.exec(['systemctl', 'stop', unit]);
    await m.writeFile('/etc/tsgunicorn/myapp.ini', `app = ${EXAMPLE_APP}\nworkers = 2\n`);
    await start(m, unit);
    const mainPid = await property(m, unit, 'MainPID');
    for (const signal of ['TTIN', 'TTOU', 'USR2']) {
      await m.run(['systemctl', 'kill', '-s', signal, unit]);
      await sleep(1_000);
      const pids = await unitPids(m, unit);
      // State T: stopped (the default action of TTIN and TTOU).
      const states = await m.run([
        'sh',
        '-c',
        'for p in "$@"; do sed -n "s/^State:[[:space:]]*\\(.\\).*/$p \\1/p" /proc/$p/status; done',
        'sh',
        ...pids.map(String),
      ]);
      expect({ signal, stopped: states.split('\n').filter((l) => / T$/.test(l)) }).toEqual({ signal, stopped: [] });
      expect((await request('http://127.0.0.1:8000/')).status).toBe(200);
    }
    expect(await property(m, unit, 'MainPID')).toBe(mainPid);
    const journal = (await m.journal(unit)).stdout;
    expect(journal).not.toMatch(/was sent SIG|failed to boot/);
    expect(journal).toMatch(/usr2: not used/);
    await m.run(['systemctl', 'stop', unit]);
  });
});
