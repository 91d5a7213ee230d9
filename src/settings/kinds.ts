// Value kinds for settings: each turns the text a user wrote (ini value, env var,
// CLI argument) into a typed value, or throws a message naming the expected form.
import { isIP, isIPv6 } from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface Kind<T> {
  /** The expected form, as shown in errors and docs: "an integer ≥ 1". */
  form: string;
  parse(text: string): T;
  /** Back to the text a config file would hold (for --print-config). */
  format(value: T): string;
}

export class InvalidValue extends Error {}

const fail = (form: string, text: string): never => {
  throw new InvalidValue(`expected ${form}, got ${JSON.stringify(text)}`);
};

export const text: Kind<string> = {
  form: 'a string',
  parse: (s) => s,
  format: (v) => v,
};

/**
 * Command-line arguments written as one text (ini, environment): words split at
 * whitespace; "double quotes" keep a word with spaces together, and inside them
 * \" and \\ stand for " and \. No other shell syntax: nothing is expanded.
 * format() quotes exactly what parse() reads back, so the `--` form of the
 * command line round-trips.
 */
export const words: Kind<string[]> = {
  form: 'arguments separated by spaces ("double quotes" around one holding spaces, \\" for a quote inside)',
  parse(s) {
    const found: string[] = [];
    const word = /\s*(?:"((?:[^"\\]|\\["\\])*)"|([^\s"]+))(?=\s|$)/y;
    let match: RegExpExecArray | null;
    while (s.slice(word.lastIndex).trim() !== '' && (match = word.exec(s))) {
      found.push(match[1] !== undefined ? match[1].replace(/\\(["\\])/g, '$1') : match[2]!);
    }
    return s.slice(word.lastIndex).trim() === '' ? found : fail(words.form, s);
  },
  format: (v) => v.map((w) => (/^[^\s"]+$/.test(w) ? w : `"${w.replace(/(["\\])/g, '\\$1')}"`)).join(' '),
};

/** A value that may be unset: an empty value means "not set". */
export function optional<T>(kind: Kind<T>): Kind<T | null> {
  return {
    form: `${kind.form} (empty for none)`,
    parse: (s) => (s.trim() === '' ? null : kind.parse(s.trim())),
    format: (v) => (v === null ? '' : kind.format(v)),
  };
}

/**
 * A directory, made absolute against the working directory at start-up: the
 * master changes into it, and a relative path would then be taken relative to
 * itself when workers are started there.
 */
export const directory: Kind<string> = {
  form: 'a directory',
  parse: (s) => path.resolve(s.trim()),
  format: (v) => v,
};

/** A number written as `pattern` allows, from min to max. */
function boundedNumber(form: string, pattern: RegExp, min: number, max: number): Kind<number> {
  return {
    form,
    parse(s) {
      const t = s.trim();
      const n = Number(t);
      return pattern.test(t) && n >= min && n <= max ? n : fail(form, s);
    },
    format: String,
  };
}

export function integer(min = 0, max = Number.MAX_SAFE_INTEGER): Kind<number> {
  const form = max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer from ${min} to ${max}`;
  return boundedNumber(form, /^-?\d+$/, min, max);
}

/**
 * The longest duration a Node timer holds: a setTimeout past 2^31−1 ms fires
 * after 1 ms instead, so every duration setting stops there (about 24.8 days).
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;
export const MAX_SECONDS = Math.floor(MAX_TIMER_MS / 1000);

/** A delay made of a setting plus a margin, kept within a timer's range (MAX_SECONDS + 2 s would fire at once). */
export const timerDelay = (ms: number): number => Math.min(ms, MAX_TIMER_MS);

/** Seconds, fractions allowed: "30", "0.5"; at most MAX_SECONDS. */
export function seconds(min = 0): Kind<number> {
  return boundedNumber(`a number of seconds from ${min} to ${MAX_SECONDS}`, /^\d+(\.\d+)?$/, min, MAX_SECONDS);
}

const truthy = new Set(['true', 'yes', 'on', '1']);
const falsy = new Set(['false', 'no', 'off', '0']);
export const boolean: Kind<boolean> = {
  form: 'true or false',
  parse(s) {
    const t = s.trim().toLowerCase();
    if (truthy.has(t)) return true;
    if (falsy.has(t)) return false;
    return fail('true or false', s);
  },
  format: String,
};

export function choice<const C extends string>(...choices: C[]): Kind<C> {
  const form = `one of ${choices.join(', ')}`;
  return {
    form,
    parse(s) {
      const t = s.trim().toLowerCase();
      return choices.find((c) => c === t) ?? fail(form, s);
    },
    format: (v) => v,
  };
}

/** A comma-separated list; the CLI form repeats the flag instead. */
export function list<T>(item: Kind<T>): Kind<T[]> {
  const form = `a comma-separated list of ${item.form.replace(/^an? /, '')}s`;
  return {
    form,
    parse(s) {
      if (s.trim() === '') return [];
      const items = s.split(',').map((p) => p.trim());
      // `10.0.0.0/8,,` is a typo, not a shorter list: say so rather than drop the gap.
      if (items.includes(''))
        throw new InvalidValue(`expected ${form}, got ${JSON.stringify(s)}: an item is empty (two commas in a row, or one at an end)`);
      return items.map((p) => item.parse(p));
    },
    format: (v) => v.map((x) => item.format(x)).join(', '),
  };
}

/** A list that must hold at least one item: a server bound to nothing serves nothing. */
export function nonEmptyList<T>(item: Kind<T>): Kind<T[]> {
  const base = list(item);
  return {
    ...base,
    parse(s) {
      const values = base.parse(s);
      return values.length > 0 ? values : fail(base.form, s);
    },
  };
}

/**
 * The most workers: each is a Node process of tens of megabytes, so a count past
 * this is a typo (40000 for 4), not a plan; TTIN stops there too.
 */
export const MAX_WORKERS = 1024;

/** `workers`: a count, or `auto` for the CPUs this process may use. */
export const workerCount: Kind<number | 'auto'> = {
  form: `an integer from 1 to ${MAX_WORKERS}, or auto`,
  parse(s) {
    const t = s.trim().toLowerCase();
    if (t === 'auto') return 'auto';
    if (!/^\d+$/.test(t) || Number(t) < 1 || Number(t) > MAX_WORKERS) return fail(workerCount.form, s);
    return Number(t);
  },
  format: String,
};

export const resolveWorkerCount = (w: number | 'auto'): number => (w === 'auto' ? os.availableParallelism() : w);

/** Memory in megabytes (RSS); 0 disables. */
export const megabytes: Kind<number> = { ...integer(0), form: 'a number of megabytes ≥ 0' };

/** `KEY=VALUE` for raw_env. */
export const keyValue: Kind<string> = {
  form: 'a KEY=VALUE pair',
  parse: (s) => (/^[A-Za-z_][A-Za-z0-9_]*=/.test(s.trim()) ? s.trim() : fail('a KEY=VALUE pair', s)),
  format: (v) => v,
};

/**
 * raw_env's list: a comma starts the next pair only where a KEY= follows it,
 * so a value may hold commas (NODE_OPTIONS=--a,--b, GREETING=hi is two pairs).
 */
export const keyValueList: Kind<string[]> = {
  form: 'KEY=VALUE pairs, separated by commas (a comma not followed by KEY= is part of the value)',
  parse: (s) =>
    s
      .split(/,(?=\s*[A-Za-z_][A-Za-z0-9_]*=)/)
      .map((p) => p.trim())
      .filter((p) => p !== '')
      .map((p) => keyValue.parse(p)),
  format: (v) => v.join(', '),
};

/**
 * A module to load as `node --require`/`--import` would: a package name or a
 * path. Not a flag ("--require x" written whole) nor a value holding spaces,
 * which no package name or sane path has and which is a typo here.
 */
export const moduleSpecifier: Kind<string> = {
  form: 'a module',
  parse(s) {
    const t = s.trim();
    return t !== '' && !t.startsWith('-') && !/\s/.test(t) ? t : fail(moduleSpecifier.form, s);
  },
  format: (v) => v,
};

/**
 * A path the master requests itself (health_check_path): it goes into a request
 * line as written, so it starts with / and holds no space or control character
 * (Node refuses to send one, at probe time) and no fragment (never sent).
 */
export const urlPath: Kind<string> = {
  form: 'a URL path, as in /health',
  parse(s) {
    const t = s.trim();
    return /^\/[!-~]*$/.test(t) && !t.includes('#') ? t : fail(urlPath.form, s);
  },
  format: (v) => v,
};

// RFC 9110 token characters: what a header field name is made of.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A header field name (access_log_headers), as in X-Request-Id. */
export const headerName: Kind<string> = {
  form: 'a header name',
  parse: (s) => (HEADER_NAME.test(s.trim()) ? s.trim() : fail(headerName.form, s)),
  format: (v) => v,
};

/** Where a log goes: a file, or - for the process's own stream (stdout or stderr). */
export const logFile: Kind<string> = {
  form: 'a file or -',
  parse: (s) => (s.trim() === '' ? fail(logFile.form, s) : s.trim()),
  format: (v) => v,
};

/** control_socket: auto, off, or the path of the socket; bind's unix: prefix is refused rather than taken as a file name. */
export const controlSocket: Kind<string> = {
  form: 'auto, off or the path of a Unix socket',
  parse(s) {
    const t = s.trim();
    if (t.startsWith('unix:')) {
      throw new InvalidValue(`expected ${controlSocket.form}, got ${JSON.stringify(s)}: write the path without unix:`);
    }
    return t === '' ? fail(controlSocket.form, s) : t;
  },
  format: (v) => v,
};

/** A group by name or GID (control_socket_group); whether it exists, and the server may use it, is checked at start (preflight). */
export const group: Kind<string> = {
  form: 'a group name or GID',
  parse: (s) => (/^(\d+|[A-Za-z_][A-Za-z0-9_.-]*\$?)$/.test(s.trim()) ? s.trim() : fail(group.form, s)),
  format: (v) => v,
};

/** A listening address: HOST:PORT, [IPV6]:PORT, :PORT, PORT, unix:PATH or fd://N. */
export type Address = TcpAddress | { kind: 'unix'; path: string } | { kind: 'fd'; fd: number };
export interface TcpAddress {
  kind: 'tcp';
  host: string;
  port: number;
}

const addressForm = 'HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N';
export const address: Kind<Address> = {
  form: addressForm,
  parse(s) {
    const t = s.trim();
    if (t.startsWith('unix:')) {
      const path = t.slice(5);
      return path ? { kind: 'unix', path } : fail(addressForm, s);
    }
    if (t.startsWith('fd://')) {
      const fd = t.slice(5);
      return /^\d+$/.test(fd) ? { kind: 'fd', fd: Number(fd) } : fail(addressForm, s);
    }
    return parseHostPort(s, addressForm);
  },
  format: formatAddress,
};

const tcpAddressForm = 'HOST:PORT or [IPV6]:PORT, as in 127.0.0.1:9100';
/**
 * A TCP address only (metrics_bind: Prometheus scrapes over TCP); the unix: and
 * fd:// forms that bind takes are refused by name.
 */
export const tcpAddress: Kind<TcpAddress> = {
  form: tcpAddressForm,
  parse(s) {
    if (/^\s*(unix:|fd:\/\/)/.test(s)) {
      throw new InvalidValue(`expected ${tcpAddressForm}, got ${JSON.stringify(s)}: only a TCP address is served here`);
    }
    return parseHostPort(s, tcpAddressForm);
  },
  format: formatAddress,
};

/** HOST:PORT, [IPV6]:PORT, :PORT or PORT (host 0.0.0.0); `form` names what the setting accepts. */
function parseHostPort(s: string, form: string): TcpAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s.trim()) ?? /^()()(\d{1,5})$/.exec(s.trim());
  if (!m) return fail(form, s);
  const port = Number(m[3]);
  if (port > 65535) return fail(form, s);
  const host = m[1] || m[2] || '0.0.0.0';
  if (m[1] ? !isIPv6(host) : !isHostName(host)) {
    throw new InvalidValue(
      `expected ${form}, got ${JSON.stringify(s)}: ${JSON.stringify(host)} is neither an IP address nor a host name ` +
        '(letters, digits, hyphens and dots; write an international name in its xn-- form)',
    );
  }
  return { kind: 'tcp', host, port };
}

// RFC 1123 host names: labels of ASCII letters, digits and inner hyphens, 253 characters in all.
const HOST_LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;
const isHostName = (host: string): boolean => host.length <= 253 && host.split('.').every((label) => HOST_LABEL.test(label));

/** True for a host that must be looked up (a name, not an IP address). */
export const needsLookup = (host: string): boolean => isIP(host) === 0;

export function formatAddress(a: Address): string {
  switch (a.kind) {
    case 'unix':
      return `unix:${a.path}`;
    case 'fd':
      return `fd://${a.fd}`;
    case 'tcp':
      return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
  }
}
