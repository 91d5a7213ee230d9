// Settings kinds, layering and instance resolution, without starting a server.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { address, integer, list, seconds, workerCount } from '../../src/settings/kinds.js';
import { findEntryPoint } from '../../src/app/spec.js';
import { instanceSettings } from '../../src/settings/instance.js';
import { ConfigError, describeSource, resolveSettings } from '../../src/settings/resolve.js';
import { schema, settingNames } from '../../src/settings/schema.js';

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
  it.each(['ünïcode:8000', 'exa mple.com:80', '-lead.example:80', 'a..b:80', '[1:2:3:4:5:6:7:8:9]:80', `${'a'.repeat(64)}.com:80`])(
    'rejects the host of %s as neither an IP address nor a host name',
    (text) => {
      expect(() => address.parse(text)).toThrow(/is neither an IP address nor a host name/);
    },
  );
  it.each(['app.example.com:443', 'xn--nicode-2ya2b.example:8000', 'my-host:80'])('accepts the host name in %s', (text) => {
    expect(address.parse(text)).toMatchObject({ kind: 'tcp' });
  });
});

describe('kinds', () => {
  it('integers, seconds, worker counts and lists name their form', () => {
    expect(integer(1).parse(' 12 ')).toBe(12);
    expect(() => integer(1).parse('0')).toThrow('expected an integer ≥ 1, got "0"');
    expect(seconds(0).parse('0.5')).toBe(0.5);
    expect(() => seconds(0).parse('5s')).toThrow('expected a number of seconds from 0 to 2147483');
    expect(workerCount.parse('AUTO')).toBe('auto');
    expect(() => workerCount.parse('0')).toThrow('an integer from 1 to 1024, or auto');
    expect(list(integer(0)).parse('1, 2, 3')).toEqual([1, 2, 3]);
    expect(list(integer(0)).parse(' ')).toEqual([]);
    expect(() => list(integer(0)).parse('1, 2,,3')).toThrow('an item is empty (two commas in a row, or one at an end)');
    expect(() => list(integer(0)).parse('1,')).toThrow('an item is empty');
  });
});

describe('upper bounds', () => {
  // Node fires a timer set past 2^31−1 ms after 1 ms: a longer duration would act as the shortest.
  it('durations stop at the longest a Node timer holds, 2147483 s', () => {
    expect(seconds(0).parse('2147483')).toBe(2147483);
    for (const text of ['2147484', '3000000', '99999999999999999999']) {
      expect(() => seconds(0).parse(text)).toThrow(`expected a number of seconds from 0 to 2147483, got "${text}"`);
    }
  });
  it('every duration setting has that bound', () => {
    const durations = settingNames.filter((n) => schema[n].kind.form.startsWith('a number of seconds'));
    expect(durations.length).toBeGreaterThanOrEqual(8);
    for (const name of durations) expect(() => schema[name].kind.parse('3000000'), name).toThrow(/to 2147483/);
  });
  it('workers: at most 1024', () => {
    expect(workerCount.parse('1024')).toBe(1024);
    for (const text of ['1025', '40000', '99999999999999999999']) {
      expect(() => workerCount.parse(text)).toThrow(`expected an integer from 1 to 1024, or auto, got "${text}"`);
    }
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
  it('key[] = … for a key that takes one value is refused, naming the line and the form to write', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-set-'));
    const file = path.join(dir, 'a.ini');
    writeFileSync(file, 'bind = 127.0.0.1:1\nworkers[] = 2\n');
    expect(() => resolveSettings({ config: file }, {})).toThrow(
      `${file}:2: workers takes one value: write \`workers = 2\`, not \`workers[] = …\``,
    );
  });
  it('config itself is not an ini key', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-set-'));
    const file = path.join(dir, 'a.ini');
    writeFileSync(file, 'config = other.ini\n');
    expect(() => resolveSettings({ config: file }, {})).toThrow(ConfigError);
  });
});

describe('raw_env', () => {
  it('keeps commas that are part of a value, and adds up repeated ini lines', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-env-'));
    const file = path.join(dir, 'a.ini');
    writeFileSync(
      file,
      'raw_env = NODE_OPTIONS=--max-old-space-size=256,--enable-source-maps, GREETING=hi\nworkers = 2\nraw_env = ALLOWED=a,b,c\n',
    );
    const { settings, sources } = resolveSettings({ config: file }, {});
    expect(settings.raw_env).toEqual(['NODE_OPTIONS=--max-old-space-size=256,--enable-source-maps', 'GREETING=hi', 'ALLOWED=a,b,c']);
    expect(sources.raw_env).toEqual({ kind: 'file', file, line: 1 });
  });

  it('takes each -e option whole, commas included', () => {
    expect(resolveSettings({ raw_env: ['LIST=x,y', 'Z=1'] }, {}).settings.raw_env).toEqual(['LIST=x,y', 'Z=1']);
  });

  it('still refuses an item that is not KEY=VALUE', () => {
    expect(() => resolveSettings({ raw_env: ['=x'] }, {})).toThrow(/option --env: raw_env: expected a KEY=VALUE pair, got "=x"/);
  });
});

describe('instances', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'tsg-inst-'));
  const dirs = { config: path.join(root, 'etc'), apps: path.join(root, 'srv') };
  const put = (file: string, content = '') => {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), content);
  };
  put('etc/withini.ini', 'app = x.ts\n');
  put('srv/withapp/app.mjs');
  // An ini that only tunes settings, beside an app in /srv/NAME.
  put('etc/tuned.ini', 'accesslog = -\n');
  put('srv/tuned/app.ts');
  put('etc/tunedchdir.ini', 'chdir = /elsewhere\n');
  put('srv/tunedchdir/app.ts');
  // A package whose main calls listen() itself, main without its extension.
  put('srv/pkg/package.json', '{"name": "pkg", "main": "lib/start"}');
  put('srv/pkg/lib/start.js');
  put('srv/pkg/app.ts');
  // A built Next.js standalone tree: server.js, and a package.json without main.
  put('srv/next/package.json', '{"name": "next-app", "private": true}');
  put('srv/next/server.js');
  put('srv/next/.next/BUILD_ID');
  put('srv/badmain/package.json', '{"main": "missing.js"}');
  put('srv/badmain/index.mjs');
  put('etc/noapp.ini', 'workers = 2\n');
  const app = (name: string) => instanceSettings(name, {}, {}, dirs);

  it('serves the app NAME.ini names, with the name as proc_name', () => {
    const { settings, sources } = app('withini');
    expect(settings).toMatchObject({ app: 'x.ts', config: path.join(dirs.config, 'withini.ini'), proc_name: 'withini' });
    expect(sources.app).toMatchObject({ kind: 'file' });
  });

  it('without an ini, serves the app in /srv/NAME from there', () => {
    const { settings, sources } = app('withapp');
    expect(settings).toMatchObject({ app: path.join(dirs.apps, 'withapp/app.mjs'), chdir: path.join(dirs.apps, 'withapp'), config: null });
    expect(describeSource(sources.app)).toBe(`found in ${path.join(dirs.apps, 'withapp')} (no app in the config)`);
  });

  it('with an ini that sets no app, still serves the app in /srv/NAME, with the ini applied', () => {
    expect(app('tuned').settings).toMatchObject({
      app: path.join(dirs.apps, 'tuned/app.ts'),
      chdir: path.join(dirs.apps, 'tuned'),
      accesslog: '-',
    });
    // The ini's chdir stays; the app is still the one in /srv/NAME.
    expect(app('tunedchdir').settings).toMatchObject({ app: path.join(dirs.apps, 'tunedchdir/app.ts'), chdir: '/elsewhere' });
  });

  it("finds a package's main (before app.*), a server script (Next.js standalone), then index.*", () => {
    expect(app('pkg').settings.app).toBe(path.join(dirs.apps, 'pkg/lib/start.js'));
    expect(findEntryPoint(path.join(dirs.apps, 'next'))).toBe('server.js');
    expect(findEntryPoint(path.join(dirs.apps, 'badmain'))).toBe('index.mjs');
  });

  it('the command line still wins over the fallback', () => {
    expect(instanceSettings('withapp', { app: 'other.js' }, {}, dirs).settings.app).toBe('other.js');
  });

  it('names every place it looked when there is nothing to serve', () => {
    expect(() => app('none')).toThrow(
      `instance none: nothing to serve: no ${path.join(dirs.config, 'none.ini')}, and ${path.join(dirs.apps, 'none')} holds no app ` +
        `(looked for package.json "main", then server.*, index.*, app.* (.js/.mjs/.cjs/.ts)): ` +
        `create ${path.join(dirs.config, 'none.ini')} (example: /usr/share/tsgunicorn/examples/instance.ini) or put the app at ${path.join(dirs.apps, 'none', 'app.ts')}`,
    );
    expect(() => app('noapp')).toThrow(
      `instance noapp: nothing to serve: ${path.join(dirs.config, 'noapp.ini')} sets no app, and ${path.join(dirs.apps, 'noapp')} holds no app ` +
        `(looked for package.json "main", then server.*, index.*, app.* (.js/.mjs/.cjs/.ts)): ` +
        `add \`app = FILE\` to ${path.join(dirs.config, 'noapp.ini')} or put the app at ${path.join(dirs.apps, 'noapp', 'app.ts')}`,
    );
    expect(() => app('../etc')).toThrow(/a name is letters/);
  });
});
