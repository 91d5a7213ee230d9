// Each structured setting is checked by its kind when it is read (command line,
// environment or ini file), so a bad value is one line and exit 2 before anything
// starts; and each setting's type is its kind's.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { LEVELS } from '../../src/logging/levels.js';
import {
  controlSocket,
  group,
  headerName,
  logFile,
  optional,
  tcpAddress,
  urlPath,
  words,
  type TcpAddress,
} from '../../src/settings/kinds.js';
import { resolveSettings } from '../../src/settings/resolve.js';
import { formatSetting, schema, settingNames, type Settings } from '../../src/settings/schema.js';

const TCP_FORM = 'expected HOST:PORT or [IPV6]:PORT, as in 127.0.0.1:9100';

describe('words (app_args)', () => {
  it.each([
    ['build/server/index.js', ['build/server/index.js']],
    ['  --mode  "two words" ', ['--mode', 'two words']],
    ['"a \\"quote\\"" "back\\\\slash" "" a\\b', ['a "quote"', 'back\\slash', '', 'a\\b']],
    ['', []],
  ])('parses %j', (text, expected) => {
    expect(words.parse(text)).toEqual(expected);
  });

  it('formats what it parses back, whatever the arguments hold (the -- form of the command line)', () => {
    const args = ['plain', 'two words', 'a "quote"', 'back\\slash', '', 'tab\there', "it's"];
    expect(words.parse(words.format(args))).toEqual(args);
  });

  it.each(['"unclosed', 'a"b', '"a"b'])('refuses %j, saying the form', (text) => {
    expect(() => words.parse(text)).toThrow(/expected arguments separated by spaces/);
  });
});

describe('tcpAddress (metrics_bind)', () => {
  it.each([
    ['127.0.0.1:9100', { kind: 'tcp', host: '127.0.0.1', port: 9100 }],
    ['[::1]:9100', { kind: 'tcp', host: '::1', port: 9100 }],
    ['localhost:9100', { kind: 'tcp', host: 'localhost', port: 9100 }],
    [' 9100 ', { kind: 'tcp', host: '0.0.0.0', port: 9100 }],
  ])('parses %s', (text, expected) => {
    expect(tcpAddress.parse(text)).toEqual(expected);
    expect(tcpAddress.parse(tcpAddress.format(tcpAddress.parse(text)))).toEqual(expected);
  });

  it.each(['oops', 'localhost', '127.0.0.1:70000', '127.0.0.1:', 'http://127.0.0.1:9100'])('refuses %s, saying what to write', (text) => {
    expect(() => tcpAddress.parse(text)).toThrow(`${TCP_FORM}, got ${JSON.stringify(text)}`);
  });

  it.each(['unix:/run/tsgunicorn/metrics.sock', 'fd://3'])('refuses %s: only TCP is served', (text) => {
    expect(() => tcpAddress.parse(text)).toThrow(`${TCP_FORM}, got ${JSON.stringify(text)}: only a TCP address is served here`);
  });

  it('is refused where it is read: command line, environment and ini file', () => {
    expect(() => resolveSettings({ metrics_bind: 'oops' }, {})).toThrow(`option --metrics-bind: metrics_bind: ${TCP_FORM}, got "oops"`);
    expect(() => resolveSettings({}, { TSGUNICORN_METRICS_BIND: 'unix:/tmp/x' })).toThrow(
      'environment TSGUNICORN_METRICS_BIND: metrics_bind: ',
    );
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'tsg-kinds-')), 'a.ini');
    writeFileSync(file, 'workers = 2\nmetrics_bind = 127.0.0.1:99999\n');
    expect(() => resolveSettings({ config: file }, {})).toThrow(`${file}:2: metrics_bind: ${TCP_FORM}, got "127.0.0.1:99999"`);
  });

  it('is held as an address, and printed back as written', () => {
    const { settings } = resolveSettings({ metrics_bind: '[::1]:9100' }, {});
    expect(settings.metrics_bind).toEqual({ kind: 'tcp', host: '::1', port: 9100 });
    expect(formatSetting('metrics_bind', settings.metrics_bind)).toBe('[::1]:9100');
  });
});

describe('the other structured settings', () => {
  it('health_check_path: a path a request line can carry', () => {
    expect(urlPath.parse('/health')).toBe('/health');
    expect(urlPath.parse(' /health?full=1 ')).toBe('/health?full=1');
    for (const text of ['health', '/health check', '/health#top', '/héalth', 'http://localhost/health']) {
      expect(() => urlPath.parse(text), text).toThrow(`expected a URL path, as in /health, got ${JSON.stringify(text)}`);
    }
  });

  it('access_log_headers: header names', () => {
    expect(headerName.parse(' X-Request-Id ')).toBe('X-Request-Id');
    for (const text of ['user agent', 'x-id:', 'naïve']) expect(() => headerName.parse(text), text).toThrow('expected a header name');
    expect(() => resolveSettings({}, { TSGUNICORN_ACCESS_LOG_HEADERS: 'x-request-id, user agent' })).toThrow(
      'environment TSGUNICORN_ACCESS_LOG_HEADERS: access_log_headers: expected a header name, got "user agent"',
    );
  });

  it('errorlog and accesslog: a file or -, never an empty name (accesslog empty is off)', () => {
    expect(logFile.parse('-')).toBe('-');
    expect(() => logFile.parse(' ')).toThrow('expected a file or -');
    expect(resolveSettings({ accesslog: '' }, {}).settings.accesslog).toBeNull();
    expect(() => resolveSettings({ errorlog: '' }, {})).toThrow('option --error-logfile: errorlog: expected a file or -, got ""');
  });

  it('control_socket: auto, off or a path, not a bind address', () => {
    for (const text of ['auto', 'off', '/run/app/control.sock', 'control.sock']) expect(controlSocket.parse(text)).toBe(text);
    expect(() => controlSocket.parse('')).toThrow('expected auto, off or the path of a Unix socket');
    expect(() => controlSocket.parse('unix:/run/app.sock')).toThrow('write the path without unix:');
  });

  it('control_socket_group: a group name or GID', () => {
    for (const text of ['www-data', '33', '_svc', 'ad$']) expect(group.parse(text)).toBe(text);
    for (const text of ['www data', '-x', 'a:b']) expect(() => group.parse(text), text).toThrow('expected a group name or GID');
  });

  it('optional(kind): empty is unset, anything else goes through the kind', () => {
    expect(optional(urlPath).parse('  ')).toBeNull();
    expect(optional(urlPath).format(null)).toBe('');
    expect(() => optional(urlPath).parse('health')).toThrow('expected a URL path');
    expect(optional(urlPath).form).toBe('a URL path, as in /health (empty for none)');
  });

  it('loglevel takes exactly the levels the logger has', () => {
    expect(schema.loglevel.kind.form).toBe(`one of ${LEVELS.join(', ')}`);
    for (const level of LEVELS) expect(schema.loglevel.kind.parse(level)).toBe(level);
  });
});

describe('the settings table', () => {
  it('each default is a value its kind reads back from its own text', () => {
    for (const name of settingNames) {
      const shown = formatSetting(name, schema[name].default);
      expect(schema[name].kind.parse(shown), name).toEqual(schema[name].default);
    }
  });

  it("types each setting as its kind's value, not as its default", () => {
    expectTypeOf<Settings['metrics_bind']>().toEqualTypeOf<TcpAddress | null>();
    expectTypeOf<Settings['workers']>().toEqualTypeOf<number | 'auto'>();
    expectTypeOf<Settings['loglevel']>().toEqualTypeOf<(typeof LEVELS)[number]>();
    expectTypeOf<Settings['interface']>().toEqualTypeOf<'auto' | 'node' | 'fetch'>();
    expectTypeOf<Settings['health_check_path']>().toEqualTypeOf<string | null>();
  });
});
