// tsgunicorn-generator's translation of bind lines, run directly on the host
// (it is POSIX sh) against a scratch config dir.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runHost } from './harness.js';

const generator = path.resolve(import.meta.dirname, '../../systemd/tsgunicorn-generator');
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'tsgunicorn-generator-'));
  mkdirSync(path.join(dir, 'etc'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function generate(files: Record<string, string>): Promise<Record<string, string>> {
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, 'etc', name), content);
  const out = path.join(dir, 'out');
  mkdirSync(out);
  const r = await runHost(
    'env',
    [`GENERATOR_CONFIG_DIR=${path.join(dir, 'etc')}`, 'sh', generator, out, `${out}.early`, `${out}.late`],
    10_000,
  );
  expect(r.code, r.stderr).toBe(0);
  return Object.fromEntries(
    readdirSync(out).map((d) => [
      d,
      readFileSync(path.join(out, d, '50-bind.conf'), 'utf8')
        .split('\n')
        .filter((l) => !l.startsWith('#'))
        .join('\n'),
    ]),
  );
}

describe('tsgunicorn-generator', () => {
  it('writes a drop-in that resets ListenStream= and lists each address', async () => {
    expect(await generate({ 'myapp.ini': 'workers = 2\nbind = 0.0.0.0:9000, unix:/run/x.sock\n' })).toEqual({
      'tsgunicorn@myapp.socket.d': '[Socket]\nListenStream=\nListenStream=0.0.0.0:9000\nListenStream=/run/x.sock\n',
    });
  });

  it('reads every address form the server accepts, skipping fd:// entries', async () => {
    const drop = await generate({ 'a.ini': 'bind = [::1]:9002,:9003, 9004,fd://3, localhost:80 ; the ports\n' });
    expect(drop['tsgunicorn@a.socket.d']).toBe(
      '[Socket]\nListenStream=\nListenStream=[::1]:9002\nListenStream=0.0.0.0:9003\nListenStream=0.0.0.0:9004\nListenStream=127.0.0.1:80\n',
    );
  });

  it('follows the ini parser: comments, quotes, last bind wins, bind[] lines add up', async () => {
    const drop = await generate({
      'c.ini': '; bind = 1.1.1.1:1\n# bind = 2.2.2.2:2\nbind = 3.3.3.3:3\nbind = "127.0.0.1:7000" ; quoted\n',
      'l.ini': 'bind[] = 127.0.0.1:7001\nbind[] = unix:/run/l.sock\n',
    });
    expect(drop['tsgunicorn@c.socket.d']).toBe('[Socket]\nListenStream=\nListenStream=127.0.0.1:7000\n');
    expect(drop['tsgunicorn@l.socket.d']).toBe('[Socket]\nListenStream=\nListenStream=127.0.0.1:7001\nListenStream=/run/l.sock\n');
  });

  it('leaves instances without a bind line, or with a name no unit can have, alone', async () => {
    expect(await generate({ 'plain.ini': 'workers = 3\n', 'bad name.ini': 'bind = 9000\n' })).toEqual({});
  });
});
