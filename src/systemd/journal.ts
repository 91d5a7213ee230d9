// Native journal logging: structured entries sent with sd_journal_sendv(3)
// through the systemd-journald addon's raw binding.
import { fstatSync } from 'node:fs';
import { loadAddon } from './addon.js';

export type JournalFields = Record<string, string | number | undefined>;

export interface JournalSink {
  /**
   * One journal entry with PRIORITY (syslog 0-7), SYSLOG_IDENTIFIER, MESSAGE and
   * the extra fields (names uppercased). False when libsystemd reports an error.
   */
  send(priority: number, message: string, fields?: JournalFields): boolean;
}

interface JournalSendBinding {
  /** send(priority, "KEY=value", ...): PRIORITY= is added by the addon; returns sd_journal_sendv's result (negative errno on failure). */
  send(...args: (number | string)[]): number;
}

/**
 * systemd.exec(5) JOURNAL_STREAM: "DEV:INODE" (decimal) of the stream systemd
 * connected stdout/stderr to; a program whose stderr still matches it may
 * switch to the native protocol.
 */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  const match = /^([0-9]+):([0-9]+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!match) return false;
  try {
    const stat = fstatSync(2, { bigint: true });
    return stat.dev === BigInt(match[1]!) && stat.ino === BigInt(match[2]!);
  } catch {
    return false;
  }
}

/**
 * The journal for a process's '-' logs: open when stderr is connected to it
 * (stderrIsJournal), null otherwise and when the addon cannot load.
 */
export function journalForStderr(identifier: string): JournalSink | null {
  return stderrIsJournal() ? openJournal(identifier) : null;
}

export function openJournal(identifier: string, debug?: (msg: string) => void): JournalSink | null {
  const binding = loadAddon<JournalSendBinding>('systemd-journald/build/Release/journal_send.node', debug);
  if (!binding) return null;
  // The argument list is reused across calls (send is synchronous): only the
  // field strings themselves are built per entry.
  const args: (number | string)[] = [0, `SYSLOG_IDENTIFIER=${safeValue(identifier)}`];
  return {
    send(priority, message, fields) {
      args[0] = priority;
      args.length = writeEntryFields(args, 2, message, fields);
      return binding.send(...args) >= 0;
    },
  };
}

// Set by us or by the addon on every entry; a caller's field may not replace them.
const RESERVED = new Set(['MESSAGE', 'PRIORITY', 'SYSLOG_IDENTIFIER']);
// journald drops fields whose names are not uppercase letters, digits and "_",
// start with a digit, exceed 64 characters, or start with "_" (trusted fields).
const FIELD_NAME = /^[A-Z][A-Z0-9_]{0,63}$/;
const MAX_CACHED_NAMES = 256;
const prefixes = new Map<string, string | null>();

function fieldPrefix(key: string): string | null {
  let prefix = prefixes.get(key);
  if (prefix === undefined) {
    const name = key.toUpperCase();
    prefix = FIELD_NAME.test(name) && !RESERVED.has(name) ? `${name}=` : null;
    if (prefixes.size < MAX_CACHED_NAMES) prefixes.set(key, prefix);
  }
  return prefix;
}

// The addon copies each string with strdup() but passes its full UTF-8 length
// to sd_journal_sendv, so an embedded NUL would make libsystemd read past the copy.
function safeValue(value: string): string {
  return value.includes('\0') ? value.replaceAll('\0', '\uFFFD') : value;
}

/**
 * Writes "MESSAGE=..." and one "NAME=value" per defined field into `out` from
 * index `at`; returns the index after the last. Each string becomes one iovec
 * of sd_journal_sendv, which sends a value holding a newline in the binary form
 * (name, newline, 64-bit little-endian length, data), so a value cannot end its
 * field or add another: a stack trace stays one MESSAGE, a client's path or
 * user agent stays one field.
 */
export function writeEntryFields(out: (number | string)[], at: number, message: string, fields?: JournalFields): number {
  let n = at;
  out[n++] = `MESSAGE=${safeValue(message)}`;
  if (fields) {
    for (const key in fields) {
      const value = fields[key];
      if (value === undefined) continue;
      const prefix = fieldPrefix(key);
      if (prefix !== null) out[n++] = prefix + safeValue(String(value));
    }
  }
  return n;
}
