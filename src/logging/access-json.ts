// The JSON access log: one object per line with the journal entry's fields
// (logger.ts accessFields) plus the query, the time and configured request
// headers. Every string from the client is escaped as JSON.stringify escapes
// it: quotes, backslashes and all control characters (a client's bytes cannot
// end the line or forge a field) and, being well-formed, lone surrogates too;
// the trace ids are validated hex digits (trace-context.ts).
import { protocolOf, type AccessEntry } from './access-format.js';
import { isoSecond } from './timestamps.js';
import { traceOf } from './trace-context.js';

const stringify = JSON.stringify as (value: string) => string;
// What JSON.stringify escapes in a string: quotes, backslashes, controls, and
// lone surrogates (any surrogate here, paired ones too, to keep the test simple).
const NEEDS_JSON_ESCAPE = /["\\\x00-\x1f\ud800-\udfff]/;
/** JSON.stringify(s), without its cost for the common string that needs no escape. */
const str = (s: string): string => (NEEDS_JSON_ESCAPE.test(s) ? stringify(s) : `"${s}"`);

/** ISO 8601 UTC with milliseconds, from a per-second cache: Date's toISOString per line costs more than the rest. */
function isoTime(ms: number): string {
  const whole = Math.floor(ms);
  const milli = whole % 1000;
  return `${isoSecond(whole)}.${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
}

export function compileJsonAccess(headers: readonly string[]): (e: AccessEntry) => string {
  const names = headers.map((h) => h.toLowerCase());
  const keys = names.map((n) => `${str(n)}:`);
  return (e) => {
    const url = e.req.url ?? '';
    const q = url.indexOf('?');
    const ua = e.req.headers['user-agent'];
    let line =
      `{"time":"${isoTime(e.startedAt)}","method":${str(e.req.method ?? '')},"protocol":${str(protocolOf(e.req))}` +
      `,"path":${str(q === -1 ? url : url.slice(0, q))},"query":${str(q === -1 ? '' : url.slice(q + 1))}` +
      `,"status":${e.res.statusCode},"bytes":${e.bytes},"duration_us":${Math.max(0, Math.floor(e.durationUs))}` +
      `,"remote_addr":${str(e.remoteAddr)},"user_agent":${ua === undefined ? 'null' : str(ua)},"worker_pid":${e.pid}`;
    const trace = traceOf(e);
    if (trace !== null) line += `,"trace_id":"${trace.traceId}","span_id":"${trace.spanId}"`;
    if (keys.length > 0) {
      line += ',"headers":{';
      for (let i = 0; i < keys.length; i++) {
        const value = e.req.headers[names[i]!];
        line += `${i === 0 ? '' : ','}${keys[i]}${value === undefined ? 'null' : str(Array.isArray(value) ? value.join(', ') : value)}`;
      }
      line += '}';
    }
    return `${line}}`;
  };
}
