// tsgunicorn's error log and access log, as Gunicorn writes them: error lines
// "[2024-05-01 12:00:00 +0200] [1234] [INFO] message" to stderr or a file, and
// one access_log_format line per request to stdout or a file. Under systemd
// (a journal sink, and the log on '-') each goes to the journal as one
// structured entry instead. Logging never throws into its caller.
import { inspect } from 'node:util';
import { sandboxHint } from '../systemd/sandbox.js';
import type { Settings } from '../settings/schema.js';
import type { JournalFields, JournalSink } from '../systemd/journal.js';
import { compileAccessFormat, escapeChar, protocolOf, type AccessEntry } from './access-format.js';
import { compileJsonAccess } from './access-json.js';
import type { Level } from './levels.js';
import { LogOutput, type Report } from './log-output.js';
import { errorLogTimestamp } from './timestamps.js';
import { traceOf } from './trace-context.js';

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warning(msg: string): void;
  error(msg: string, err?: unknown): void;
  critical(msg: string, err?: unknown): void;
  access(entry: AccessEntry): void;
  readonly accessEnabled: boolean;
  /** Reopens the log files (USR1, logrotate). */
  reopen(): void;
  /** Flushes and closes the log files; later calls log nothing. */
  close(): Promise<void>;
}

export interface LoggerOptions {
  /** The PID in error lines and WORKER_PID; defaults to process.pid. */
  pid?: number;
  /** Where '-' logs go under systemd (journalForStderr); null: never the journal. */
  journal: JournalSink | null;
}

const SEVERITY: Record<Level, number> = { debug: 10, info: 20, warning: 30, error: 40, critical: 50 };
const LABEL: Record<Level, string> = { debug: 'DEBUG', info: 'INFO', warning: 'WARNING', error: 'ERROR', critical: 'CRITICAL' };
// syslog(3) priorities, which journald's PRIORITY field uses.
const PRIORITY: Record<Level, number> = { debug: 7, info: 6, warning: 4, error: 3, critical: 2 };
const ACCESS_PRIORITY = PRIORITY.info;
const WATCH_INTERVAL_MS = 1000;

// Client bytes reach error messages (a URL, an app's error text quoting a
// decoded path): controls other than tab and newline are escaped, and a
// continuation line that starts like a record ("[2024-...") is indented, so
// nothing a client sends can pass for a record of its own.
const UNSAFE_IN_RECORD = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]/g;
function asOneRecord(text: string): string {
  return text.replace(UNSAFE_IN_RECORD, escapeChar).replace(/\n\[/g, '\n [');
}

/** The error's own text: for an Error its stack (with cause and properties), else the value. */
function describeError(err: unknown): string {
  return typeof err === 'string' ? err : inspect(err);
}

/** For an error on a file the service's sandbox keeps it from (the app's own, too): which setting lets it in. */
function pathHint(err: unknown): string {
  const file = (err as NodeJS.ErrnoException | null)?.path;
  return typeof file === 'string' ? sandboxHint(file, err) : '';
}

function errorFields(err: unknown): JournalFields | undefined {
  const errno = (err as { errno?: unknown } | null)?.errno;
  return typeof errno === 'number' ? { ERRNO: Math.abs(errno) } : undefined;
}

function accessFields(e: AccessEntry): JournalFields {
  const url = e.req.url ?? '';
  const q = url.indexOf('?');
  const trace = traceOf(e);
  return {
    HTTP_METHOD: e.req.method,
    HTTP_PROTOCOL: protocolOf(e.req),
    HTTP_PATH: q === -1 ? url : url.slice(0, q),
    // The query string as sent (without "?"); absent when there is none.
    HTTP_QUERY: q === -1 ? undefined : url.slice(q + 1),
    HTTP_STATUS: e.res.statusCode,
    HTTP_DURATION_US: Math.floor(e.durationUs),
    HTTP_BYTES: e.bytes,
    REMOTE_ADDR: e.remoteAddr,
    USER_AGENT: e.req.headers['user-agent'],
    WORKER_PID: e.pid,
    TRACE_ID: trace?.traceId,
    SPAN_ID: trace?.spanId,
  };
}

export function createLogger(
  settings: Pick<Settings, 'accesslog' | 'access_log_format' | 'errorlog' | 'loglevel'> &
    Partial<Pick<Settings, 'access_log_json' | 'access_log_headers'>>,
  options: LoggerOptions,
): Logger {
  const pid = options.pid ?? process.pid;
  const threshold = SEVERITY[settings.loglevel] ?? SEVERITY.info;
  let closed = false;

  // Faults of the error log itself (and of the journal) go straight to stderr.
  let stderrOutput: LogOutput | null = null;
  const stderr = (): LogOutput => (stderrOutput ??= new LogOutput('-', 2, 'stderr', () => {}));
  const errorLine = (level: Level, text: string): string =>
    `${errorLogTimestamp(Date.now())} [${pid}] [${LABEL[level]}] ${asOneRecord(text)}\n`;
  const toStderr = (level: Level, message: string): void => stderr().write(errorLine(level, message));
  const toErrorLog: Report = (level, message) => log(level, message);

  const errorJournal = settings.errorlog === '-' ? options.journal : null;
  const errorOutput =
    settings.errorlog === '-'
      ? stderr()
      : new LogOutput(settings.errorlog, 2, 'error log', (level, message) => (level === 'info' ? toErrorLog : toStderr)(level, message));

  const accesslog = settings.accesslog;
  const formatAccess =
    accesslog === null
      ? null
      : settings.access_log_json
        ? compileJsonAccess(settings.access_log_headers ?? [])
        : compileAccessFormat(settings.access_log_format);
  const accessJournal = accesslog === '-' ? options.journal : null;
  let accessOutput: LogOutput | null = null;
  // With the journal, stdout only carries the lines the journal refused.
  const accessText = (): LogOutput | null =>
    accesslog === null ? null : (accessOutput ??= new LogOutput(accesslog, 1, 'access log', toErrorLog, true));
  if (accessJournal === null) accessText();

  const send = journalSender(toStderr);

  function log(level: Level, msg: string, err?: unknown): void {
    if (closed || SEVERITY[level] < threshold) return;
    const text = err === undefined ? msg : `${msg}${pathHint(err)}\n${describeError(err)}`;
    if (errorJournal !== null && send(errorJournal, PRIORITY[level], text, errorFields(err))) return;
    errorOutput.write(errorLine(level, text));
  }

  let reportedFormatFault = false;
  function access(entry: AccessEntry): void {
    if (closed || formatAccess === null) return;
    let line: string;
    try {
      line = formatAccess(entry);
    } catch (err) {
      if (!reportedFormatFault) {
        reportedFormatFault = true;
        log('error', 'Cannot format an access log line; dropping such lines', err);
      }
      return;
    }
    if (accessJournal !== null && send(accessJournal, ACCESS_PRIORITY, line, accessFields(entry))) return;
    accessText()?.write(`${line}\n`);
  }

  const files = (): LogOutput[] => [errorOutput, accessOutput].filter((o): o is LogOutput => o !== null && o.isFile);
  const watcher = files().length > 0 ? setInterval(() => files().forEach((o) => void o.check()), WATCH_INTERVAL_MS) : null;
  watcher?.unref();

  return {
    debug: (msg) => log('debug', msg),
    info: (msg) => log('info', msg),
    warning: (msg) => log('warning', msg),
    error: (msg, err) => log('error', msg, err),
    critical: (msg, err) => log('critical', msg, err),
    access,
    accessEnabled: formatAccess !== null,
    reopen() {
      if (!closed) files().forEach((o) => o.reopen());
    },
    async close() {
      if (closed) return;
      closed = true;
      if (watcher !== null) clearInterval(watcher);
      await Promise.all([errorOutput, accessOutput, stderrOutput].flatMap((o) => (o ? [o.close()] : [])));
    },
  };
}

/**
 * Sends entries to the journal. Its socket can vanish (journald restarting): the
 * entry then goes to the text stream (false), and the fault is said on stderr
 * once until a send succeeds again.
 */
function journalSender(toStderr: (level: Level, message: string) => void) {
  let reported = false;
  return (sink: JournalSink, priority: number, message: string, fields: JournalFields | undefined): boolean => {
    let sent: boolean;
    try {
      sent = sink.send(priority, message, fields);
    } catch {
      sent = false;
    }
    if (sent && reported) {
      reported = false;
      toStderr('info', 'Sending to the journal works again');
    } else if (!sent && !reported) {
      reported = true;
      toStderr('error', 'Cannot send to the journal; writing to stdout/stderr until it works again');
    }
    return sent;
  };
}
