// Gunicorn's access_log_format: a Python %-format over named atoms, e.g.
// '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'. The format is
// parsed once into literal text and one getter per atom; a request only runs the
// getters and concatenates.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { unescape as percentDecode } from 'node:querystring';
import { clfTimestamp } from './timestamps.js';
import { traceOf } from './trace-context.js';

export interface AccessEntry {
  req: IncomingMessage;
  res: ServerResponse;
  remoteAddr: string;
  /** Date.now() when the request began. */
  startedAt: number;
  durationUs: number;
  /** Response body bytes sent. */
  bytes: number;
  pid: number;
}

type Atom = (e: AccessEntry) => string;

/** The request's protocol as logs name it, `HTTP/1.1` or `HTTP/2.0`: constants for the common versions. */
export function protocolOf(req: IncomingMessage): string {
  const version = req.httpVersion;
  return version === '1.1' ? 'HTTP/1.1' : version === '2.0' ? 'HTTP/2.0' : `HTTP/${version}`;
}

// Anything a client controls could otherwise end the line, start a forged one
// or drive a terminal: C0 and C1 controls, DEL, and the Unicode line/paragraph
// separators. `"` and `\` are escaped as Apache does so quoted fields stay
// parseable. The first test is the fast path for ordinary values.
const NEEDS_ESCAPE = /[\x00-\x1f\x7f-\x9f"\\\u2028\u2029]/;
const ESCAPABLE = new RegExp(NEEDS_ESCAPE.source, 'g');

export function escapeChar(c: string): string {
  if (c === '"' || c === '\\') return `\\${c}`;
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16)}`;
}

function escapeLogValue(value: string): string {
  return NEEDS_ESCAPE.test(value) ? value.replace(ESCAPABLE, escapeChar) : value;
}

function headerText(value: string | string[] | number | undefined): string {
  if (value === undefined) return '-';
  return escapeLogValue(Array.isArray(value) ? value.join(', ') : String(value));
}

function requestHeader(name: string): Atom {
  return (e) => headerText(e.req.headers[name]);
}

/**
 * A header as sent: read from the head Node wrote (`_header`), which also holds
 * headers given to writeHead(status, {...}) (not kept for getHeader) and the
 * ones Node adds itself (Date, Content-Length, ...). getHeader() before it is sent.
 */
function sentResponseHeader(res: ServerResponse, name: string): string | number | string[] | undefined {
  const head = (res as { _header?: unknown })._header;
  if (typeof head !== 'string') return res.getHeader(name);
  let value: string | undefined;
  for (const line of head.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0 || line.slice(0, colon).trim().toLowerCase() !== name) continue;
    const v = line.slice(colon + 1).trim();
    value = value === undefined ? v : `${value}, ${v}`;
  }
  return value;
}

function responseHeader(name: string): Atom {
  return (e) => headerText(sentResponseHeader(e.res, name));
}

function environmentVariable(name: string): Atom {
  return () => headerText(process.env[name]);
}

/** The user of "Authorization: Basic base64(user:password)", as Gunicorn's _get_user reads it. */
function basicAuthUser(auth: string | undefined): string {
  if (auth === undefined || auth.slice(0, 5).toLowerCase() !== 'basic') return '-';
  const space = auth.indexOf(' ');
  if (space === -1) return '-';
  const credentials = Buffer.from(auth.slice(space + 1).trim(), 'base64').toString('utf8');
  const colon = credentials.indexOf(':');
  const user = colon === -1 ? credentials : credentials.slice(0, colon);
  return user === '' ? '-' : escapeLogValue(user);
}

const target = (e: AccessEntry): string => e.req.url ?? '';

/** Gunicorn's PATH_INFO: the percent-decoded path (malformed escapes are kept as they are). */
function decodedPath(url: string): string {
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  return path.includes('%') ? percentDecode(path) : path;
}

const wholeMicros = (e: AccessEntry): number => Math.max(0, Math.floor(e.durationUs));

const ATOMS: Record<string, Atom> = {
  h: (e) => escapeLogValue(e.remoteAddr),
  l: () => '-',
  u: (e) => basicAuthUser(e.req.headers.authorization),
  t: (e) => clfTimestamp(e.startedAt),
  r: (e) => escapeLogValue(`${e.req.method} ${target(e)} HTTP/${e.req.httpVersion}`),
  m: (e) => escapeLogValue(e.req.method ?? '-'),
  U: (e) => escapeLogValue(decodedPath(target(e))),
  q: (e) => {
    const url = target(e);
    const q = url.indexOf('?');
    return q === -1 ? '' : escapeLogValue(url.slice(q + 1));
  },
  H: (e) => escapeLogValue(`HTTP/${e.req.httpVersion}`),
  s: (e) => String(e.res.statusCode),
  B: (e) => String(e.bytes),
  b: (e) => (e.bytes > 0 ? String(e.bytes) : '-'),
  f: requestHeader('referer'),
  a: requestHeader('user-agent'),
  T: (e) => String(Math.floor(wholeMicros(e) / 1e6)),
  M: (e) => String(Math.floor(wholeMicros(e) / 1e3)),
  D: (e) => String(wholeMicros(e)),
  L: (e) => {
    const us = wholeMicros(e);
    return `${Math.floor(us / 1e6)}.${String(us % 1e6).padStart(6, '0')}`;
  },
  p: (e) => `<${e.pid}>`,
  // Hex digits only (trace-context.ts validates them), so nothing to escape.
  trace_id: (e) => traceOf(e)?.traceId ?? '-',
  span_id: (e) => traceOf(e)?.spanId ?? '-',
};

const unknownAtom: Atom = () => '-';

function atomFor(name: string): Atom {
  const braced = /^\{(.+)\}([ioe])$/.exec(name);
  if (braced) {
    const [, key, kind] = braced as unknown as [string, string, 'i' | 'o' | 'e'];
    if (kind === 'e') return environmentVariable(key);
    return kind === 'i' ? requestHeader(key.toLowerCase()) : responseHeader(key.toLowerCase());
  }
  return Object.hasOwn(ATOMS, name) ? ATOMS[name]! : unknownAtom;
}

// %(name)s (or %(name)d) is an atom and %% a literal percent sign, as in Python's
// %-formatting; any other % is kept as written.
const TOKEN = /%%|%\(([^)]*)\)[sd]/g;

export function compileAccessFormat(format: string): (e: AccessEntry) => string {
  const literals: string[] = [];
  const atoms: Atom[] = [];
  let literal = '';
  let from = 0;
  for (const match of format.matchAll(TOKEN)) {
    literal += format.slice(from, match.index);
    from = match.index + match[0].length;
    if (match[1] === undefined) {
      literal += '%';
    } else {
      literals.push(literal);
      atoms.push(atomFor(match[1]));
      literal = '';
    }
  }
  const tail = literal + format.slice(from);
  const n = atoms.length;
  return (e) => {
    let line = '';
    for (let i = 0; i < n; i++) line += literals[i]! + atoms[i]!(e);
    return line + tail;
  };
}
