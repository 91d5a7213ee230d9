// The trace a request belongs to, for access log entries that join traces: the
// span an APM agent opened for it, else the caller's W3C `traceparent` header.
// Only the access log asks, so a worker whose access log is off never parses it.
import type { AccessEntry } from './access-format.js';

export interface TraceIds {
  /** 32 lowercase hex digits, not all zero. */
  traceId: string;
  /** 16 lowercase hex digits, not all zero: the agent's server span, or the caller's span (traceparent's parent-id). */
  spanId: string;
}

// W3C Trace Context, 3.2.2: traceparent = version "-" trace-id "-" parent-id "-"
// trace-flags, all lowercase hex (HEXDIGLC); version 00 is exactly these four
// fields (3.2.4: a version 00 value with more is invalid). Version ff is
// invalid and later versions are not parsed here. All-zero ids are invalid
// (3.2.2.3, 3.2.2.4). A header sent twice reaches us joined with ", " and fails.
const TRACEPARENT_00 = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;
const ZERO_TRACE_ID = '0'.repeat(32);
const ZERO_SPAN_ID = '0'.repeat(16);
const HEX_TRACE_ID = /^[0-9a-f]{32}$/;
const HEX_SPAN_ID = /^[0-9a-f]{16}$/;

/** The ids of a valid traceparent value, else null: a malformed value is ignored, never logged. */
export function parseTraceparent(value: string | string[] | undefined): TraceIds | null {
  if (typeof value !== 'string' || value.length !== 55) return null;
  const match = TRACEPARENT_00.exec(value);
  if (match === null) return null;
  return validIds(match[1], match[2]);
}

function validIds(traceId: unknown, spanId: unknown): TraceIds | null {
  if (typeof traceId !== 'string' || typeof spanId !== 'string') return null;
  if (!HEX_TRACE_ID.test(traceId) || !HEX_SPAN_ID.test(spanId)) return null;
  return traceId === ZERO_TRACE_ID || spanId === ZERO_SPAN_ID ? null : { traceId, spanId };
}

// OpenTelemetry's API keeps what the agent registered (its context manager
// among them) on the global object under this symbol, shared by every copy of
// @opentelemetry/api 1.x an app may load; a span is stored in a context under
// the second. Reading them here needs no dependency on the API, which
// tsgunicorn would otherwise load into every worker and could pin to a version
// other than the app's.
const OTEL_API = Symbol.for('opentelemetry.js.api.1');
const OTEL_SPAN = Symbol.for('OpenTelemetry Context Key SPAN');

interface OtelGlobal {
  context?: { active(): { getValue(key: symbol): unknown } };
}

/** The span active in OpenTelemetry's context right now, when an agent registered one. */
function activeOtelSpan(): TraceIds | null {
  const api = (globalThis as Record<symbol, OtelGlobal | undefined>)[OTEL_API];
  if (api?.context === undefined) return null;
  const span = api.context.active().getValue(OTEL_SPAN) as { spanContext?: () => Partial<TraceIds> } | undefined;
  const ids = typeof span?.spanContext === 'function' ? span.spanContext() : null;
  return ids ? validIds(ids.traceId, ids.spanId) : null;
}

/**
 * The trace of an access log entry. Called as the entry is logged, from the
 * response's 'close' listener, which an agent binds to the request's span.
 */
export function traceOf(e: AccessEntry): TraceIds | null {
  return activeOtelSpan() ?? parseTraceparent(e.req.headers.traceparent);
}
