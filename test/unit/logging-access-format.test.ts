import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileAccessFormat } from '../../src/logging/access-format.js';
import { request, serve } from '../helpers/logging-request.js';

const GUNICORN_DEFAULT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"';
// 2000-10-10 20:55:36 UTC: Gunicorn's own example date, 13:55:36 -0700 in Los Angeles.
const OCT_10_2000 = Date.UTC(2000, 9, 10, 20, 55, 36);
const basic = (credentials: string): string => `Authorization: Basic ${Buffer.from(credentials).toString('base64')}`;
// What may never appear in a formatted line: anything that ends a line or drives a terminal.
const LINE_BREAKING = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/;

let savedTz: string | undefined;
beforeAll(() => {
  savedTz = process.env.TZ;
  process.env.TZ = 'America/Los_Angeles';
});
afterAll(() => {
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

describe('compileAccessFormat: the default format', () => {
  it('writes the combined-log line Gunicorn writes, field by field', async () => {
    const { entry } = await serve(
      request('/path/x?q=1&r=2', 'Referer: http://example.test/from', 'User-Agent: probe/1.0', basic('alice:secret')),
      { status: 201, body: 'hello', entry: { startedAt: OCT_10_2000 } },
    );
    const line = compileAccessFormat(GUNICORN_DEFAULT)(entry);
    expect(line).toMatch(
      /^127\.0\.0\.1 - alice \[10\/Oct\/2000:13:55:36 -0700\] "GET \/path\/x\?q=1&r=2 HTTP\/1\.1" 201 5 "http:\/\/example\.test\/from" "probe\/1\.0"$/,
    );
  });

  it("writes '-' for a missing user, referer, user agent and an empty body", async () => {
    const { entry } = await serve(request('/'), { status: 204, entry: { startedAt: OCT_10_2000 } });
    expect(compileAccessFormat(GUNICORN_DEFAULT)(entry)).toBe('127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 204 - "-" "-"');
  });
});

describe('compileAccessFormat: every atom', () => {
  const atoms = ['h', 'l', 'u', 't', 'r', 'm', 'U', 'q', 'H', 's', 'B', 'b', 'f', 'a', 'T', 'M', 'D', 'L', 'p'];

  it('gives each atom its Gunicorn meaning', async () => {
    const { entry } = await serve(request('/a%20b/c?x=1', 'Referer: http://r.test/', 'User-Agent: ua/2', basic('bob:pw:with:colons')), {
      status: 404,
      body: 'not found',
      entry: { startedAt: OCT_10_2000, durationUs: 2_345_678, pid: 4242 },
    });
    const format = compileAccessFormat(atoms.map((a) => `%(${a})s`).join('|'));
    expect(format(entry).split('|')).toEqual([
      '127.0.0.1',
      '-',
      'bob',
      '[10/Oct/2000:13:55:36 -0700]',
      'GET /a%20b/c?x=1 HTTP/1.1',
      'GET',
      '/a b/c',
      'x=1',
      'HTTP/1.1',
      '404',
      '9',
      '9',
      'http://r.test/',
      'ua/2',
      '2',
      '2345',
      '2345678',
      '2.345678',
      '<4242>',
    ]);
  });

  it('gives T, M, D and L for a sub-second request, and B 0 but b - for no body', async () => {
    const { entry } = await serve(request('/'), { entry: { durationUs: 7_089 } });
    expect(compileAccessFormat('%(T)s %(M)s %(D)s %(L)s %(B)s %(b)s')(entry)).toBe('0 7 7089 0.007089 0 -');
  });

  it('reads {name}i request headers and {name}o response headers as sent, case-insensitively', async () => {
    const { entry } = await serve(request('/', 'X-Request-Id: abc-123', 'Cookie: a=1'), {
      headers: { 'X-Reply': 'done', 'Set-Cookie': ['s=1', 't=2'] },
    });
    const format = compileAccessFormat('%({X-REQUEST-ID}i)s %({cookie}i)s %({x-reply}o)s %({set-cookie}o)s %({Connection}o)s');
    // Connection is added by Node itself (the client asked for close).
    expect(format(entry)).toBe('abc-123 a=1 done s=1, t=2 close');
  });

  it("writes '-' for a missing header, an unset variable and an unknown atom", async () => {
    const { entry } = await serve(request('/'));
    delete process.env.ACCESS_LOG_TEST_UNSET;
    const format = compileAccessFormat('%({x-absent}i)s %({x-absent}o)s %({ACCESS_LOG_TEST_UNSET}e)s %(nope)s %({x}z)s');
    expect(format(entry)).toBe('- - - - -');
  });

  it('reads {name}e from the environment when the request is logged', async () => {
    const { entry } = await serve(request('/'));
    const format = compileAccessFormat('%({ACCESS_LOG_TEST_VAR}e)s');
    process.env.ACCESS_LOG_TEST_VAR = 'blue';
    try {
      expect(format(entry)).toBe('blue');
    } finally {
      delete process.env.ACCESS_LOG_TEST_VAR;
    }
  });

  it('has an empty q without a query string, as Gunicorn', async () => {
    const { entry } = await serve(request('/plain'));
    expect(compileAccessFormat('[%(q)s] [%(U)s]')(entry)).toBe('[] [/plain]');
  });

  it('keeps %% as a percent sign and other text as written', async () => {
    const { entry } = await serve(request('/'), { status: 200 });
    expect(compileAccessFormat('100%% %(s)s %d %(s)d')(entry)).toBe('100% 200 %d 200');
  });

  it('writes t in local time with the UTC offset of that date', async () => {
    const { entry } = await serve(request('/'), { entry: { startedAt: Date.UTC(2001, 0, 15, 8, 5, 9) } });
    expect(compileAccessFormat('%(t)s')(entry)).toBe('[15/Jan/2001:00:05:09 -0800]');
    process.env.TZ = 'Asia/Kolkata';
    try {
      const later = { ...entry, startedAt: Date.UTC(2001, 0, 15, 8, 5, 10) };
      expect(compileAccessFormat('%(t)s')(later)).toBe('[15/Jan/2001:13:35:10 +0530]');
    } finally {
      process.env.TZ = 'America/Los_Angeles';
    }
  });
});

describe('compileAccessFormat: escaping what a client sends', () => {
  const everything = compileAccessFormat('%(h)s %(u)s "%(r)s" %(m)s %(U)s %(q)s "%(f)s" "%(a)s" %({x-probe}i)s');

  function expectOneSafeLine(line: string): void {
    expect(line).not.toMatch(LINE_BREAKING);
  }

  it('escapes the C1 controls and tab that Node lets through in a header', async () => {
    const { entry } = await serve(request('/', 'User-Agent: a\tb\x85c\x9bd', 'X-Probe: \x85forged'));
    const line = everything(entry);
    expectOneSafeLine(line);
    expect(line).toContain('"a\\x09b\\x85c\\x9bd"');
    expect(line).toContain(' \\x85forged');
  });

  it('escapes raw control bytes that the lenient parser (insecureHTTPParser) lets through', async () => {
    const { entry } = await serve(request('/', 'User-Agent: \x1b[31mred\x01'), { insecureHTTPParser: true });
    const line = everything(entry);
    expectOneSafeLine(line);
    expect(line).toContain('"\\x1b[31mred\\x01"');
  });

  it('escapes " and \\ so a quoted field cannot be closed early or forged', async () => {
    const { entry } = await serve(request('/a"b\\c?x="y"', 'Referer: x" 200 0 "forged'));
    const line = everything(entry);
    expect(line).toContain('"GET /a\\"b\\\\c?x=\\"y\\" HTTP/1.1"');
    expect(line).toContain('"x\\" 200 0 \\"forged"');
    // Every " that is not escaped is one of the format's own six.
    expect(line.match(/(?<!\\)"/g)).toHaveLength(6);
  });

  it('escapes line breaks that percent-decoding puts in U', async () => {
    const { entry } = await serve(request('/a%0Ab%0Dc%1Bd%E2%80%A8e%C2%85f%7Fg'));
    const line = compileAccessFormat('%(U)s')(entry);
    expectOneSafeLine(line);
    expect(line).toBe('/a\\x0ab\\x0dc\\x1bd\\u2028e\\x85f\\x7fg');
  });

  it('escapes a Basic-auth user name holding a newline', async () => {
    const { entry } = await serve(request('/', basic('ev\nil\r\u2029:pw')));
    const line = compileAccessFormat('%(u)s')(entry);
    expectOneSafeLine(line);
    expect(line).toBe('ev\\x0ail\\x0d\\u2029');
  });

  it('escapes response headers too (an app may echo client input)', async () => {
    const { entry } = await serve(request('/'), { headers: { 'X-Echo': 'a\tb' } });
    expect(compileAccessFormat('%({x-echo}o)s')(entry)).toBe('a\\x09b');
  });

  it('leaves ordinary non-ASCII text alone', async () => {
    const { entry } = await serve(request('/caf%C3%A9'));
    expect(compileAccessFormat('%(U)s')(entry)).toBe('/café');
  });
});
