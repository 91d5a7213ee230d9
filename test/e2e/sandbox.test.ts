// The unit's sandbox as an admin meets it, and the drop-ins the README gives
// to change it, each tried: an app under /home (ProtectHome=), an app that
// writes beside itself in /srv/NAME (ReadWritePaths=), NODE_OPTIONS, MemoryMax=.
import { describe, expect, it } from 'vitest';
import { diagnose, journalEntries, property, start, useMachine } from './fixture.js';
import { SUITES, type Machine } from './harness.js';
import { request } from '../helpers/http.js';

const unit = 'tsgunicorn@myapp.service';
// Answers with what the sandbox lets it do: write a file beside itself, and its heap limit and NODE_OPTIONS.
const APP = `import { writeFileSync } from 'node:fs';
import v8 from 'node:v8';

export function app(req, res) {
  if (req.url === '/write') {
    try {
      writeFileSync(new URL('./uploads/note.txt', import.meta.url), 'written');
      res.end('written');
    } catch (err) {
      res.statusCode = 500;
      res.end(err.code);
    }
    return;
  }
  const heapMB = Math.round(v8.getHeapStatistics().heap_size_limit / 2 ** 20);
  res.end(JSON.stringify({ nodeOptions: process.env.NODE_OPTIONS ?? null, heapMB }));
}
`;

async function dropIn(m: Machine, name: string, body: string): Promise<void> {
  await m.writeFile(`/etc/systemd/system/tsgunicorn@myapp.service.d/${name}.conf`, `[Service]\n${body}\n`);
  await m.run(['systemctl', 'daemon-reload']);
}

describe.each(SUITES)('%s: the sandbox and its drop-ins', (suite) => {
  const machine = useMachine(suite);

  it('an app under /home fails with a chdir error naming ProtectHome; the ProtectHome=read-only drop-in serves it', async () => {
    const m = machine();
    await m.writeFile('/home/ann/app/app.mjs', APP);
    await m.writeFile('/etc/tsgunicorn/myapp.ini', 'chdir = /home/ann/app\napp = app.mjs\n');
    const r = await m.systemctl('start', unit);
    expect(r.code).not.toBe(0);
    const entries = (await journalEntries(m, unit, '-p', 'err')).filter((e) => e.MESSAGE?.includes('chdir /home/ann/app'));
    expect(entries.map((e) => e.MESSAGE)).toEqual([
      "tsgunicorn: error: chdir /home/ann/app: EACCES: tsgunicorn@myapp.service's sandbox (ProtectHome=yes) hides /home, /root, /run/user; " +
        'to serve from /home: systemctl edit tsgunicorn@myapp.service, add "[Service]" and "ProtectHome=read-only"',
    ]);
    await dropIn(m, 'home', 'ProtectHome=read-only');
    await m.run(['systemctl', 'reset-failed', unit]);
    await start(m, unit);
    expect((await request('http://127.0.0.1:8000/')).status).toBe(200);
    await m.run(['systemctl', 'stop', unit]);
    await m.run(['rm', '-r', '/etc/systemd/system/tsgunicorn@myapp.service.d', '/etc/tsgunicorn/myapp.ini']);
    await m.run(['systemctl', 'daemon-reload']);
  });

  it('/srv/NAME is read-only even when the service user owns it; ReadWritePaths= opens a directory of it', async () => {
    const m = machine();
    await m.writeFile('/srv/myapp/app.mjs', APP);
    await m.run(['install', '-d', '-o', 'tsgunicorn', '-g', 'tsgunicorn', '/srv/myapp/uploads']);
    await start(m, unit);
    expect(await request('http://127.0.0.1:8000/write')).toMatchObject({ status: 500, body: 'EROFS' });
    await dropIn(m, 'uploads', 'ReadWritePaths=/srv/myapp/uploads');
    await m.run(['systemctl', 'restart', unit]);
    expect(await request('http://127.0.0.1:8000/write')).toMatchObject({ status: 200, body: 'written' });
    expect(await m.run(['cat', '/srv/myapp/uploads/note.txt'])).toBe('written');
  });

  it('NODE_OPTIONS and MemoryMax= drop-ins apply to the workers', async () => {
    const m = machine();
    await dropIn(m, 'node', 'Environment=NODE_OPTIONS=--max-old-space-size=200\nMemoryMax=300M');
    await m.run(['systemctl', 'restart', unit]);
    const reply = await request('http://127.0.0.1:8000/');
    if (reply.status !== 200) throw new Error(`${JSON.stringify(reply)}\n${await diagnose(m, unit)}`);
    const seen = JSON.parse(reply.body) as { nodeOptions: string; heapMB: number };
    expect(seen.nodeOptions).toBe('--max-old-space-size=200');
    // The old space limit plus the young generation: far below V8's default of several GB on a machine this size.
    expect(seen.heapMB).toBeGreaterThanOrEqual(200);
    expect(seen.heapMB).toBeLessThan(600);
    expect(await property(m, unit, 'MemoryMax')).toBe(String(300 * 2 ** 20));
    await m.run(['systemctl', 'stop', unit]);
  });
});
