import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { compileJsonAccess } from '../../src/logging/access-json.js';
import { createLogger } from '../../src/logging/logger.js';
import type { JournalFields, JournalSink } from '../../src/systemd/journal.js';
import { request, serve } from '../helpers/logging-request.js';

it('writes the journal entry fields, the query, the time and configured headers as one JSON object', async () => {
  const { entry } = await serve(request('/items/7?page=2&q=x', 'User-Agent: t/1', 'X-Request-Id: abc-1'), {
    status: 201,
    body: 'made',
    entry: { startedAt: Date.UTC(2026, 0, 2, 3, 4, 5, 678), durationUs: 1234.9, pid: 4242 },
  });
  const line = compileJsonAccess(['X-Request-Id', 'x-absent'])(entry);
  expect(JSON.parse(line)).toEqual({
    time: '2026-01-02T03:04:05.678Z',
    method: 'GET',
    protocol: 'HTTP/1.1',
    path: '/items/7',
    query: 'page=2&q=x',
    status: 201,
    bytes: 4,
    duration_us: 1234,
    remote_addr: '127.0.0.1',
    user_agent: 't/1',
    worker_pid: 4242,
    headers: { 'x-request-id': 'abc-1', 'x-absent': null },
  });
  expect(JSON.parse(compileJsonAccess([])(entry))).not.toHaveProperty('headers');
  for (const [ms, text] of [
    [5.9, '.005Z'],
    [40, '.040Z'],
    [0, '.000Z'],
  ] as const) {
    const at = { ...entry, startedAt: Date.UTC(2026, 0, 2, 3, 4, 5) + ms };
    expect(JSON.parse(compileJsonAccess([])(at)).time).toBe(`2026-01-02T03:04:05${text}`);
  }
});

it('escapes what a client sends, so no value can end the line or forge a field', async () => {
  const nasty = '"},"status":999,"x":"\\\x01\x1b[31m\x7f\xe9';
  // The lenient parser lets control bytes into header values, as a permissive proxy might pass them on.
  const { entry } = await serve(request('/p"\\?a="b"', `User-Agent: ${nasty}`, `X-Note: ${nasty}`), { insecureHTTPParser: true });
  const line = compileJsonAccess(['x-note'])(entry);
  expect(line).not.toMatch(/[\x00-\x1f]/);
  const parsed = JSON.parse(line);
  expect(parsed.status).toBe(200);
  expect(parsed.path).toBe('/p"\\');
  expect(parsed.query).toBe('a="b"');
  // Node reads header bytes as latin1: the value comes back exactly as sent.
  expect(parsed.user_agent).toBe(nasty);
  expect(parsed.headers['x-note']).toBe(nasty);
});

it('goes to the access log file one object per line, and to the journal with the same fields', async () => {
  const { entry } = await serve(request('/j', 'User-Agent: t/1'));
  const accesslog = join(mkdtempSync(join(tmpdir(), 'tsg-json-')), 'access.log');
  const base = { access_log_format: '%(h)s', errorlog: '-', loglevel: 'info' as const, access_log_json: true };
  const log = createLogger({ ...base, accesslog }, { journal: null });
  log.access(entry);
  log.access(entry);
  await log.close();
  const lines = readFileSync(accesslog, 'utf8').split('\n');
  expect(lines).toHaveLength(3);
  expect(lines[2]).toBe('');
  expect(lines.slice(0, 2).map((l) => JSON.parse(l).path)).toEqual(['/j', '/j']);

  const sent: Array<{ message: string; fields?: JournalFields | undefined }> = [];
  const journal: JournalSink = {
    send: (_priority: number, message: string, fields?: JournalFields) => (sent.push({ message, fields }), true),
  };
  const toJournal = createLogger({ ...base, accesslog: '-' }, { journal });
  toJournal.access(entry);
  await toJournal.close();
  expect(JSON.parse(sent[0]!.message)).toMatchObject({ path: '/j', status: 200, remote_addr: '127.0.0.1' });
  expect(sent[0]!.fields).toMatchObject({ HTTP_PATH: '/j', HTTP_STATUS: 200, REMOTE_ADDR: '127.0.0.1' });
});

it('writes every string exactly as JSON.stringify does, escaped or not', async () => {
  const { entry } = await serve(request('/s', 'X-Note: x'));
  const values = [
    'plain',
    '',
    'caf\xe9 \x7f del',
    'quote " and \\ backslash',
    'tab\tnewline\n',
    'line\u2028separator',
    'pair \ud83d\ude00',
    'lone \ud83d high',
    'lone \ude00 low',
    '\u00ff\u0100\uffff',
  ];
  for (const value of values) {
    entry.req.headers['x-note'] = value;
    entry.req.headers['user-agent'] = value;
    const line = compileJsonAccess(['x-note'])(entry);
    expect(line).toContain(`"user_agent":${JSON.stringify(value)},`);
    expect(line).toContain(`"headers":{"x-note":${JSON.stringify(value)}}`);
    expect(JSON.parse(line).headers['x-note']).toBe(value);
  }
});
