// Settings kinds, layering and instance resolution, without starting a server.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { address, integer, list, seconds, workerCount } from '../../src/settings/kinds.js';
import { instanceValues } from '../../src/settings/instance.js';
import { ConfigError, resolveSettings } from '../../src/settings/resolve.js';

describe('address', () => {
  it.each([
    ['127.0.0.1:8000', { kind: 'tcp', host: '127.0.0.1', port: 8000 }],
    ['0.0.0.0:80', { kind: 'tcp', host: '0.0.0.0', port: 80 }],
    [':9000', { kind: 'tcp', host: '0.0.0.0', port: 9000 }],
    ['9000', { kind: 'tcp', host: '0.0.0.0', port: 9000 }],
    ['[::1]:8000', { kind: 'tcp', host: '::1', port: 8000 }],
    ['localhost:8000', { kind: 'tcp', host: 'localhost', port: 8000 }],
    ['unix:/run/app.sock', { kind: 'unix', path: '/run/app.sock' }],
    ['fd://3', { kind: 'fd', fd: 3 }],
  ])('parses %s', (text, expected) => {
    expect(address.parse(text)).toEqual(expected);
    expect(address.parse(address.format(address.parse(text)))).toEqual(expected);
  });
  it.each(['127.0.0.1:70000', 'unix:', 'fd://x', 'a:b:c', '[::1]', 'host:'])('rejects %s', (text) => {
    expect(() => address.parse(text)).toThrow(/expected HOST:PORT/);
  });
});

describe('kinds', () => {
  it('integers, seconds, worker counts and lists name their form', () => {
    expect(integer(1).parse(' 12 ')).toBe(12);
    expect(() => integer(1).parse('0')).toThrow('expected an integer ≥ 1, got "0"');
    expect(seconds(0).parse('0.5')).toBe(0.5);
    expect(() => seconds(0).parse('5s')).toThrow('expected a number of seconds ≥ 0');
    expect(workerCount.parse('AUTO')).toBe('auto');
    expect(() => workerCount.parse('0')).toThrow('an integer ≥ 1, or auto');
    expect(list(integer(0)).parse('1, 2,,3')).toEqual([1, 2, 3]);
  });
});

describe('resolveSettings', () => {
  it('repeated CLI flags accumulate; env lists split on commas', () => {
    const { settings, sources } = resolveSettings({ bind: ['127.0.0.1:1', 'unix:/tmp/x.sock'] }, { TSGUNICORN_RAW_ENV: 'A=1, B=2' });
    expect(settings.bind).toEqual([
      { kind: 'tcp', host: '127.0.0.1', port: 1 },
      { kind: 'unix', path: '/tmp/x.sock' },
    ]);
    expect(settings.raw_env).toEqual(['A=1', 'B=2']);
    expect(sources.raw_env).toEqual({ kind: 'env', name: 'TSGUNICORN_RAW_ENV' });
  });
  it('ini arrays (key[] = …) add items', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-set-'));
    const file = path.join(dir, 'a.ini');
    writeFileSync(file, 'bind[] = 127.0.0.1:1\nbind[] = 127.0.0.1:2\nreload\n');
    const { settings } = resolveSettings({ config: file }, {});
    expect(settings.bind.map((b) => (b.kind === 'tcp' ? b.port : 0))).toEqual([1, 2]);
    expect(settings.reload).toBe(true);
  });
  it('config itself is not an ini key', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-set-'));
    const file = path.join(dir, 'a.ini');
    writeFileSync(file, 'config = other.ini\n');
    expect(() => resolveSettings({ config: file }, {})).toThrow(ConfigError);
  });
});

describe('instances', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'tsg-inst-'));
  const dirs = { config: path.join(root, 'etc'), apps: path.join(root, 'srv') };
  mkdirSync(dirs.config);
  mkdirSync(path.join(dirs.apps, 'withapp'), { recursive: true });
  writeFileSync(path.join(dirs.apps, 'withapp', 'app.mjs'), '');
  writeFileSync(path.join(dirs.config, 'withini.ini'), 'app = x.ts\n');

  it('prefers NAME.ini, then /srv/NAME/app.*, else says what to create', () => {
    expect(instanceValues('withini', {}, dirs)).toMatchObject({ config: path.join(dirs.config, 'withini.ini'), proc_name: 'withini' });
    expect(instanceValues('withapp', {}, dirs)).toMatchObject({ app: 'app.mjs', chdir: path.join(dirs.apps, 'withapp'), proc_name: 'withapp' });
    expect(() => instanceValues('none', {}, dirs)).toThrow(
      `instance none: nothing to serve: create ${path.join(dirs.config, 'none.ini')} (example: /usr/share/tsgunicorn/examples/instance.ini) or put the app at ${path.join(dirs.apps, 'none', 'app.ts')}`,
    );
    expect(() => instanceValues('../etc', {}, dirs)).toThrow(/a name is letters/);
  });
});
