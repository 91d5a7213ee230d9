import { fstatSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { openJournal, stderrIsJournal, writeEntryFields } from '../../src/systemd/journal.js';

describe('stderrIsJournal (systemd.exec JOURNAL_STREAM)', () => {
  const stderr = fstatSync(2, { bigint: true });

  it('is true when JOURNAL_STREAM names the device and inode of fd 2', () => {
    expect(stderrIsJournal({ JOURNAL_STREAM: `${stderr.dev}:${stderr.ino}` })).toBe(true);
  });

  it('is false when JOURNAL_STREAM names another stream', () => {
    expect(stderrIsJournal({ JOURNAL_STREAM: `${stderr.dev}:${stderr.ino + 1n}` })).toBe(false);
    expect(stderrIsJournal({ JOURNAL_STREAM: `${stderr.dev + 1n}:${stderr.ino}` })).toBe(false);
  });

  it('is false when JOURNAL_STREAM is unset or malformed', () => {
    expect(stderrIsJournal({})).toBe(false);
    expect(stderrIsJournal({ JOURNAL_STREAM: `${stderr.dev}-${stderr.ino}` })).toBe(false);
    expect(stderrIsJournal({ JOURNAL_STREAM: `${stderr.dev}:${stderr.ino}:0` })).toBe(false);
  });
});

describe('writeEntryFields', () => {
  it('writes MESSAGE whole, multi-line included, then the defined fields uppercased', () => {
    const out: (number | string)[] = [6, 'SYSLOG_IDENTIFIER=app'];
    const trace = 'Error: boom\n    at handler (app.js:3:9)\n    at main (app.js:9:1)';
    const end = writeEntryFields(out, 2, trace, { remote_addr: '127.0.0.1', status: 200, referer: undefined });
    expect(out.slice(0, end)).toEqual([6, 'SYSLOG_IDENTIFIER=app', `MESSAGE=${trace}`, 'REMOTE_ADDR=127.0.0.1', 'STATUS=200']);
  });

  it('keeps a client value with newlines as the value of its own field', () => {
    // One iovec per string: sd_journal_sendv sends a value holding a newline
    // length-prefixed, so "\nPRIORITY=0" stays inside PATH.
    const out: (number | string)[] = [];
    const end = writeEntryFields(out, 0, 'GET', { path: '/x\nPRIORITY=0\nMESSAGE=forged' });
    expect(out.slice(0, end)).toEqual(['MESSAGE=GET', 'PATH=/x\nPRIORITY=0\nMESSAGE=forged']);
  });

  it('drops fields that would replace the fixed ones or that journald would refuse', () => {
    const out: (number | string)[] = [];
    const end = writeEntryFields(out, 0, 'm', {
      priority: 0,
      message: 'forged',
      syslog_identifier: 'other',
      _pid: 1,
      '1st': 'x',
      'user agent': 'x',
      'A=B': 'x',
      ['X'.repeat(65)]: 'x',
      ok_1: 'kept',
    });
    expect(out.slice(0, end)).toEqual(['MESSAGE=m', 'OK_1=kept']);
  });

  it('replaces NUL bytes, which the addon would mis-copy', () => {
    const out: (number | string)[] = [];
    const end = writeEntryFields(out, 0, 'a\0b', { agent: '\0' });
    expect(out.slice(0, end)).toEqual(['MESSAGE=a\uFFFDb', 'AGENT=\uFFFD']);
  });
});

describe('openJournal', () => {
  it('opens a sink through the built addon, whose send reports a boolean without throwing', () => {
    const messages: string[] = [];
    const sink = openJournal('tsgunicorn-test', (m) => messages.push(m));
    expect(messages).toEqual([]);
    expect(sink).not.toBeNull();
    expect(typeof sink!.send(6, 'line one\nline two', { path: '/a', size: 3, none: undefined })).toBe('boolean');
  });
});
