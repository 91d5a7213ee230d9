// tsgunicorn-generator makes /etc/tsgunicorn/NAME.ini's bind the addresses of
// tsgunicorn@NAME.socket, replacing the default port 8000.
import { describe, expect, it } from 'vitest';
import { EXAMPLE_GREETING, installExampleApp, property, start, waitServing, useMachine } from './fixture.js';
import { SUITES } from './harness.js';
import { attempt, request } from '../helpers/http.js';

describe.each(SUITES)('%s: tsgunicorn-generator', (suite) => {
  const machine = useMachine(suite);

  it("after daemon-reload, tsgunicorn@other.socket listens on the ini's bind and the app serves there", async () => {
    const m = machine();
    await installExampleApp(m, 'other');
    await m.writeFile('/etc/tsgunicorn/other.ini', 'app = /srv/other/app.ts\nbind = 127.0.0.1:9001\n');
    await m.run(['systemctl', 'daemon-reload']);

    expect(await m.run(['cat', '/run/systemd/generator/tsgunicorn@other.socket.d/50-bind.conf'])).toContain('ListenStream=127.0.0.1:9001');
    expect(await property(m, 'tsgunicorn@other.socket', 'Listen')).toBe('127.0.0.1:9001 (Stream)');

    await start(m, 'tsgunicorn@other.service');
    await waitServing(m, 'tsgunicorn@other.service', 'http://127.0.0.1:9001/', 10_000);
    expect((await request('http://127.0.0.1:9001/')).body).toContain(EXAMPLE_GREETING);
    // The bind replaced the unit's default port rather than adding to it.
    expect(await attempt('http://127.0.0.1:8000/', { timeoutMs: 2_000 })).toEqual({ ok: false, reason: 'ECONNREFUSED' });
  });
});
