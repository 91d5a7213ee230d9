// TypeScript through the installed command, /usr/bin/tsgunicorn (the bundled
// runtime with the CLI's node options), not only through the repository's bin:
// --check-config of a .ts app, and a .ts hooks module in the master under the unit.
import { describe, expect, it } from 'vitest';
import { diagnose, EXAMPLE_APP, EXAMPLE_GREETING, property, start, useMachine } from './fixture.js';
import { SUITES, waitFor } from './harness.js';
import { request } from '../helpers/http.js';

const unit = 'tsgunicorn@tsapp.service';
// Type annotations throughout, so loading it needs type stripping.
const HOOKS = `export function when_ready(server: unknown): void {
  const note: string = 'hooks.ts when_ready ran';
  console.log(note);
}
`;
const CONFIG = `app = app.ts
chdir = /srv/tsapp
hooks = hooks.ts
`;

describe.each(SUITES)('%s: TypeScript through /usr/bin/tsgunicorn', (suite) => {
  const machine = useMachine(suite);

  it('--check-config of an instance with a .ts app and .ts hooks says Config OK', async () => {
    const m = machine();
    await m.run(['install', '-D', '-m', '0644', EXAMPLE_APP, '/srv/tsapp/app.ts']);
    await m.writeFile('/srv/tsapp/hooks.ts', HOOKS);
    await m.writeFile('/etc/tsgunicorn/tsapp.ini', CONFIG);
    const r = await m.exec(['/usr/bin/tsgunicorn', '--instance', 'tsapp', '--check-config']);
    expect({ code: r.code, out: r.stdout.trim(), err: r.stderr.trim() }).toEqual({
      code: 0,
      out: 'Config OK: app.ts loads as a node app',
      err: '',
    });
  });

  it('the unit serves the .ts app and runs its .ts hooks in the master, with no restart', async () => {
    const m = machine();
    await start(m, unit);
    expect(await request('http://127.0.0.1:8000/')).toMatchObject({ status: 200, body: EXAMPLE_GREETING });
    await waitFor(
      async () => ((await m.journal(unit)).stdout.includes('hooks.ts when_ready ran') ? true : undefined),
      10_000,
      () => 'the when_ready hook of hooks.ts did not run',
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose(m, unit)}`);
    });
    expect(await property(m, unit, 'NRestarts')).toBe('0');
    await m.run(['systemctl', 'stop', unit]);
  });
});
