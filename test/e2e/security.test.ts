// The units load cleanly on the suite's systemd, and the service's sandbox
// keeps `systemd-analyze security` exposure at 2.0 or below.
import { describe, expect, it } from 'vitest';
import { useMachine } from './fixture.js';
import { SUITES } from './harness.js';

describe.each(SUITES)('%s: unit files', (suite) => {
  const machine = useMachine(suite);

  it('pass systemd-analyze verify with no message', async () => {
    const m = machine();
    // The rootfs has no man-db to look the Documentation= pages up with: --man=no, and the pages are checked below.
    const r = await m.exec(['systemd-analyze', 'verify', '--man=no', 'tsgunicorn@myapp.socket', 'tsgunicorn@myapp.service']);
    expect({ code: r.code, output: (r.stdout + r.stderr).trim() }).toEqual({ code: 0, output: '' });
    for (const page of ['/usr/share/man/man1/tsgunicorn.1.gz', '/usr/share/man/man5/tsgunicorn.ini.5.gz']) {
      expect((await m.exec(['test', '-f', page])).code, `${page} (named by Documentation=)`).toBe(0);
    }
  });

  it('has systemd-analyze security exposure ≤ 2.0', async () => {
    const m = machine();
    const r = await m.exec(['systemd-analyze', 'security', '--no-pager', 'tsgunicorn@myapp.service']);
    const match = /Overall exposure level for tsgunicorn@myapp\.service: (\d+\.\d)/.exec(r.stdout);
    if (!match) throw new Error(`no exposure level in systemd-analyze security output:\n${r.stdout}${r.stderr}`);
    console.log(`[${suite}] systemd-analyze security tsgunicorn@myapp.service: exposure ${match[1]}`);
    expect(Number(match[1])).toBeLessThanOrEqual(2.0);
  });
});
