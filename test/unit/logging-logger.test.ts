import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logging/logger.js';
import type { JournalFields, JournalSink } from '../../src/systemd/journal.js';
import { request, serve } from '../helpers/logging-request.js';
import { until } from '../helpers/wait.js';

const DEFAULT_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"';
const ERROR_LINE =
  /^\[(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) ([+-]\d{2})(\d{2})\] \[(\d+)\] \[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\] (.*)$/;
const ACCESS_LINE = /^127\.0\.0\.1 - - \[\d{2}\/\w{3}\/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "GET \/(\S*) HTTP\/1\.1" 200 2 "-" "t\/1"$/;

const dir = mkdtempSync(join(tmpdir(), 'tsgunicorn-logging-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const freshPath = (name: string): string => join(dir, `${++n}-${name}`);
const read = (path: string): string => (existsSync(path) ? readFileSync(path, 'utf8') : '');
const nonEmptyLines = (text: string): string[] => text.split('\n').filter((l) => l !== '');
const lines = (path: string): string[] => nonEmptyLines(read(path));
/** "LEVEL message" of each error log line in `text`. */
const levelAndMessage = (text: string) => nonEmptyLines(text).map((l) => ERROR_LINE.exec(l)?.slice(6).join(' '));

type LogSettings = Parameters<typeof createLogger>[0];
function settings(over: Partial<LogSettings>): LogSettings {
  return { accesslog: null, access_log_format: DEFAULT_FORMAT, errorlog: freshPath('error.log'), loglevel: 'info', ...over };
}

/** A real request's AccessEntry (path /<name>, body "ok", User-Agent t/1). */
async function entryFor(name: string) {
  return (await serve(request(`/${name}`, 'User-Agent: t/1'), { body: 'ok' })).entry;
}

describe('error log lines', () => {
  it("are Gunicorn's '[date time offset] [pid] [LEVEL] message', in local time", async () => {
    const errorlog = freshPath('error.log');
    const log = createLogger(settings({ errorlog, loglevel: 'debug' }), { pid: 4242, journal: null });
    log.debug('d');
    log.info('Starting tsgunicorn');
    log.warning('w');
    log.error('e');
    log.critical('c');
    await log.close();
    const written = lines(errorlog).map((l) => ERROR_LINE.exec(l));
    expect(written.map((m) => m && [m[5], m[6], m[7]])).toEqual([
      ['4242', 'DEBUG', 'd'],
      ['4242', 'INFO', 'Starting tsgunicorn'],
      ['4242', 'WARNING', 'w'],
      ['4242', 'ERROR', 'e'],
      ['4242', 'CRITICAL', 'c'],
    ]);
    // The local date, time and offset name the current instant.
    const [, date, time, offH, offM] = written[0]!;
    const stamped = Date.parse(`${date}T${time}${offH}:${offM}`);
    expect(Math.abs(stamped - Date.now())).toBeLessThan(60_000);
  });

  it('drop messages below loglevel before formatting them', async () => {
    const errorlog = freshPath('error.log');
    const log = createLogger(settings({ errorlog, loglevel: 'warning' }), { journal: null });
    let formatted = 0;
    const costly = { [inspect.custom]: () => `costly ${++formatted}` };
    log.debug('no');
    log.info('no');
    log.warning('yes w');
    log.error('yes e', costly);
    log.critical('yes c');
    const strict = createLogger(settings({ errorlog: freshPath('error.log'), loglevel: 'critical' }), { journal: null });
    strict.error('dropped', costly);
    await Promise.all([log.close(), strict.close()]);
    expect(lines(errorlog).map((l) => ERROR_LINE.exec(l)?.[6] ?? l)).toEqual(['WARNING', 'ERROR', 'costly 1', 'CRITICAL']);
    expect(formatted).toBe(1);
  });

  it("put an error's stack on the lines after the log line", async () => {
    const errorlog = freshPath('error.log');
    const log = createLogger(settings({ errorlog }), { journal: null });
    log.error('Worker failed', new Error('boom'));
    await log.close();
    const [first, ...rest] = lines(errorlog);
    expect(ERROR_LINE.exec(first!)?.slice(6)).toEqual(['ERROR', 'Worker failed']);
    expect(rest[0]).toBe('Error: boom');
    expect(rest[1]).toMatch(/^ {4}at /);
  });
});

describe('access log file', () => {
  it('is off when accesslog is unset', async () => {
    const log = createLogger(settings({ accesslog: null }), { journal: null });
    expect(log.accessEnabled).toBe(false);
    expect(() => log.access({} as never)).not.toThrow();
    await log.close();
  });

  it('gets one formatted line per request, appended', async () => {
    const accesslog = freshPath('access.log');
    const log = createLogger(settings({ accesslog }), { journal: null });
    expect(log.accessEnabled).toBe(true);
    log.access(await entryFor('one'));
    log.access(await entryFor('two'));
    await log.close();
    const again = createLogger(settings({ accesslog }), { journal: null });
    again.access(await entryFor('three'));
    await again.close();
    expect(lines(accesslog).map((l) => ACCESS_LINE.exec(l)?.[1])).toEqual(['one', 'two', 'three']);
  });

  it('shows a burst of lines in order within a fraction of a second, without a close', async () => {
    const accesslog = freshPath('access.log');
    const log = createLogger(settings({ accesslog }), { journal: null });
    const entry = await entryFor('burst');
    const started = Date.now();
    for (let i = 0; i < 2000; i++) {
      entry.req.url = `/${i}`;
      log.access(entry);
    }
    await until('2,000 lines', () => lines(accesslog).length === 2000, 1000);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(lines(accesslog).map((l) => Number(ACCESS_LINE.exec(l)?.[1]))).toEqual(Array.from({ length: 2000 }, (_, i) => i));
    await log.close();
  });

  it('moves to a fresh file on reopen() after logrotate renamed it', async () => {
    const accesslog = freshPath('access.log');
    const log = createLogger(settings({ accesslog }), { journal: null });
    log.access(await entryFor('before'));
    await until('the first line', () => read(accesslog) !== '');
    renameSync(accesslog, `${accesslog}.1`);
    log.reopen();
    log.access(await entryFor('after'));
    await log.close();
    expect(lines(`${accesslog}.1`).map((l) => ACCESS_LINE.exec(l)?.[1])).toEqual(['before']);
    expect(lines(accesslog).map((l) => ACCESS_LINE.exec(l)?.[1])).toEqual(['after']);
  });

  it('is recreated, and said so once, when removed under the running server', async () => {
    const accesslog = freshPath('access.log');
    const errorlog = freshPath('error.log');
    const log = createLogger(settings({ accesslog, errorlog }), { journal: null });
    log.access(await entryFor('before'));
    await until('the first line', () => read(accesslog) !== '');
    rmSync(accesslog);
    await until('the access log to be recreated', () => existsSync(accesslog));
    log.access(await entryFor('after'));
    await new Promise((r) => setTimeout(r, 1500)); // another check finds nothing to do
    await log.close();
    expect(lines(accesslog).map((l) => ACCESS_LINE.exec(l)?.[1])).toEqual(['after']);
    const notices = lines(errorlog).filter((l) => l.includes('moved or removed'));
    expect(notices).toHaveLength(1);
    expect(ERROR_LINE.exec(notices[0]!)?.slice(6)).toEqual(['INFO', `The access log ${accesslog} was moved or removed; reopened it`]);
  });

  it('reports a failing write (ENOSPC on /dev/full) once, however many requests follow', async () => {
    const errorlog = freshPath('error.log');
    const log = createLogger(settings({ accesslog: '/dev/full', errorlog }), { journal: null });
    const entry = await entryFor('full');
    for (let i = 0; i < 50; i++) expect(() => log.access(entry)).not.toThrow();
    await until('the report', () => read(errorlog).includes('/dev/full'));
    // The 1 s check retries the file meanwhile: still reported only once.
    for (let round = 0; round < 5; round++) {
      await new Promise((r) => setTimeout(r, 500));
      for (let i = 0; i < 50; i++) expect(() => log.access(entry)).not.toThrow();
    }
    await log.close();
    const reports = lines(errorlog);
    expect(reports).toHaveLength(1);
    expect(ERROR_LINE.exec(reports[0]!)?.slice(6)).toEqual([
      'ERROR',
      'Cannot write the access log /dev/full: ENOSPC: no space left on device, write; dropping its lines until it works again',
    ]);
  });

  it('keeps trying a file it cannot open, and says when it works again', async () => {
    const logDir = join(dir, `${++n}-logs`);
    mkdirSync(logDir);
    const accesslog = join(logDir, 'access.log');
    const errorlog = freshPath('error.log');
    const log = createLogger(settings({ accesslog, errorlog }), { journal: null });
    log.access(await entryFor('first'));
    await until('the first line', () => read(accesslog) !== '');
    rmSync(logDir, { recursive: true });
    await until('the report', () => read(errorlog).includes('Cannot write'));
    await new Promise((r) => setTimeout(r, 1200)); // at least one more failed retry
    mkdirSync(logDir);
    await until('the file to be recreated', () => existsSync(accesslog));
    log.access(await entryFor('again'));
    await until('the recovery notice', () => read(errorlog).includes('writable again'));
    await log.close();
    expect(lines(accesslog).map((l) => ACCESS_LINE.exec(l)?.[1])).toEqual(['again']);
    const said = levelAndMessage(read(errorlog));
    expect(said.filter((s) => s?.includes('Cannot write'))).toHaveLength(1);
    expect(said.filter((s) => s?.includes('writable again'))).toEqual([`INFO The access log ${accesslog} is writable again`]);
  });
});

class RecordingJournal implements JournalSink {
  entries: { priority: number; message: string; fields?: JournalFields | undefined }[] = [];
  constructor(private readonly accept = true) {}
  send(priority: number, message: string, fields?: JournalFields): boolean {
    this.entries.push({ priority, message, fields });
    return this.accept;
  }
}

describe('journal', () => {
  it('gets error-log entries with the syslog PRIORITY of their level, filtered by loglevel', async () => {
    const journal = new RecordingJournal();
    const log = createLogger(settings({ errorlog: '-', loglevel: 'debug' }), { journal });
    log.debug('d');
    log.info('i');
    log.warning('w');
    log.error('e');
    log.critical('c');
    const quiet = createLogger(settings({ errorlog: '-', loglevel: 'error' }), { journal });
    quiet.info('not sent');
    await Promise.all([log.close(), quiet.close()]);
    expect(journal.entries.map((e) => [e.priority, e.message])).toEqual([
      [7, 'd'],
      [6, 'i'],
      [4, 'w'],
      [3, 'e'],
      [2, 'c'],
    ]);
  });

  it('gets an error with its stack as one entry', async () => {
    const journal = new RecordingJournal();
    const log = createLogger(settings({ errorlog: '-' }), { journal });
    const err = Object.assign(new Error('no such file'), { errno: -2, code: 'ENOENT' });
    log.error('Cannot load the app', err);
    await log.close();
    expect(journal.entries).toHaveLength(1);
    const [entry] = journal.entries;
    expect(entry!.priority).toBe(3);
    expect(entry!.message).toMatch(/^Cannot load the app\nError: no such file\n {4}at /);
    expect(entry!.fields).toEqual({ ERRNO: 2 });
  });

  it('is not used for an error log written to a file', async () => {
    const journal = new RecordingJournal();
    const errorlog = freshPath('error.log');
    const log = createLogger(settings({ errorlog }), { journal });
    log.info('to the file');
    await log.close();
    expect(journal.entries).toEqual([]);
    expect(lines(errorlog)).toHaveLength(1);
  });

  it('gets one structured entry per request for accesslog -', async () => {
    const journal = new RecordingJournal();
    const log = createLogger(settings({ accesslog: '-' }), { journal, pid: 777 });
    const { entry } = await serve(request('/orders/7?full=1', 'User-Agent: probe/2'), {
      status: 500,
      body: 'oops',
      entry: { durationUs: 1234, pid: 777 },
    });
    log.access(entry);
    await log.close();
    expect(journal.entries).toHaveLength(1);
    const [sent] = journal.entries;
    expect(sent!.priority).toBe(6);
    expect(sent!.message).toMatch(/^127\.0\.0\.1 - - \[[^\]]+\] "GET \/orders\/7\?full=1 HTTP\/1\.1" 500 4 "-" "probe\/2"$/);
    expect(sent!.fields).toEqual({
      HTTP_METHOD: 'GET',
      HTTP_PROTOCOL: 'HTTP/1.1',
      HTTP_PATH: '/orders/7',
      HTTP_QUERY: 'full=1',
      HTTP_STATUS: 500,
      HTTP_DURATION_US: 1234,
      HTTP_BYTES: 4,
      REMOTE_ADDR: '127.0.0.1',
      USER_AGENT: 'probe/2',
      WORKER_PID: 777,
    });
  });
});

// stdout and stderr: a child process whose output the test reads.
const loggerModule = fileURLToPath(new URL('../../dist/js/logging/logger.js', import.meta.url));

/** Runs `script` with createLogger imported; stdout goes to `stdoutFd` when given, else is read. */
function runChild(script: string, stdoutFd?: number): Promise<{ stdout: string; stderr: string }> {
  const program = `import { createLogger } from ${JSON.stringify(loggerModule)};\n${script}`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', program], {
      stdio: ['ignore', stdoutFd ?? 'pipe', 'pipe'],
      timeout: 10_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve({ stdout, stderr }) : reject(new Error(`exit ${code}: ${stderr}`))));
  });
}

// A minimal request/response pair, enough for the '%(r)s %(s)s' format used below.
const FAKE_ENTRY = `({ req: { method: 'GET', url: '/x', httpVersion: '1.1', headers: {} }, res: { statusCode: 200 },
  remoteAddr: '127.0.0.1', startedAt: Date.now(), durationUs: 5, bytes: 0, pid: process.pid })`;

describe('stdout and stderr (built logger in a child process; needs npm run build)', () => {
  it('writes the error log to stderr and the access log to stdout for -', async () => {
    expect(existsSync(loggerModule)).toBe(true);
    const { stdout, stderr } = await runChild(`
      const log = createLogger({ accesslog: '-', access_log_format: '%(r)s %(s)s', errorlog: '-', loglevel: 'info' }, { journal: null, pid: 99 });
      log.info('hello');
      log.access(${FAKE_ENTRY});
      await log.close();`);
    expect(stdout).toBe('GET /x HTTP/1.1 200\n');
    expect(nonEmptyLines(stderr).map((l) => ERROR_LINE.exec(l)?.slice(5))).toEqual([['99', 'INFO', 'hello']]);
  });

  it('falls back to stdout/stderr when the journal refuses, saying so once', async () => {
    const { stdout, stderr } = await runChild(`
      const journal = { send: () => false };
      const log = createLogger({ accesslog: '-', access_log_format: '%(r)s %(s)s', errorlog: '-', loglevel: 'info' }, { journal, pid: 99 });
      for (let i = 0; i < 3; i++) { log.info('hello ' + i); log.access(${FAKE_ENTRY}); }
      await log.close();`);
    expect(stdout).toBe('GET /x HTTP/1.1 200\n'.repeat(3));
    expect(levelAndMessage(stderr)).toEqual([
      'ERROR Cannot send to the journal; writing to stdout/stderr until it works again',
      'INFO hello 0',
      'INFO hello 1',
      'INFO hello 2',
    ]);
  });

  it('reports an error log file it cannot write to stderr, once', async () => {
    const errorlog = join(dir, 'no-such-dir', 'error.log');
    const { stderr } = await runChild(`
      const log = createLogger({ accesslog: null, access_log_format: '', errorlog: ${JSON.stringify(errorlog)}, loglevel: 'info' }, { journal: null });
      for (let i = 0; i < 20; i++) { log.error('lost ' + i); await new Promise((r) => setTimeout(r, 100)); }
      await log.close();`);
    expect(levelAndMessage(stderr)).toEqual([
      `ERROR Cannot write the error log ${errorlog}: ENOENT: no such file or directory, open '${errorlog}'; dropping its lines until it works again`,
    ]);
  });

  it('still writes the last lines of a process that exits at once, to a file and to a pipe', async () => {
    const accesslog = freshPath('access.log');
    const { stdout } = await runChild(`
      const toFile = createLogger({ accesslog: ${JSON.stringify(accesslog)}, access_log_format: '%(r)s %(s)s', errorlog: '-', loglevel: 'info' }, { journal: null });
      const toPipe = createLogger({ accesslog: '-', access_log_format: '%(r)s %(s)s', errorlog: '-', loglevel: 'info' }, { journal: null });
      await new Promise((r) => setTimeout(r, 200));
      for (let i = 0; i < 100; i++) { toFile.access(${FAKE_ENTRY}); toPipe.access(${FAKE_ENTRY}); }
      process.exit(0);`);
    expect(read(accesslog)).toBe('GET /x HTTP/1.1 200\n'.repeat(100));
    expect(stdout).toBe('GET /x HTTP/1.1 200\n'.repeat(100));
  });

  it('writes to stdout redirected to a file', async () => {
    const out = freshPath('stdout.log');
    const fd = openSync(out, 'a');
    try {
      await runChild(
        `const log = createLogger({ accesslog: '-', access_log_format: '%(r)s %(s)s', errorlog: '-', loglevel: 'info' }, { journal: null });
        for (let i = 0; i < 3; i++) log.access(${FAKE_ENTRY});
        await log.close();`,
        fd,
      );
    } finally {
      closeSync(fd);
    }
    expect(read(out)).toBe('GET /x HTTP/1.1 200\n'.repeat(3));
  });
});
