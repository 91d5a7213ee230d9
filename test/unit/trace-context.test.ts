import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it } from 'vitest';
import { compileAccessFormat } from '../../src/logging/access-format.js';
import { compileJsonAccess } from '../../src/logging/access-json.js';
import { createLogger } from '../../src/logging/logger.js';
import { parseTraceparent, traceOf } from '../../src/logging/trace-context.js';
import type { JournalFields, JournalSink } from '../../src/systemd/journal.js';
import { request, serve } from '../helpers/logging-request.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';
const VALID = `00-${TRACE_ID}-${SPAN_ID}-01`;

describe('parseTraceparent (W3C Trace Context, version 00)', () => {
  it('reads the trace id and the parent id of a valid value, whatever its flags', () => {
    expect(parseTraceparent(VALID)).toEqual({ traceId: TRACE_ID, spanId: SPAN_ID });
    expect(parseTraceparent(`00-${TRACE_ID}-${SPAN_ID}-00`)).toEqual({ traceId: TRACE_ID, spanId: SPAN_ID });
    expect(parseTraceparent(`00-${TRACE_ID}-${SPAN_ID}-ff`)).toEqual({ traceId: TRACE_ID, spanId: SPAN_ID });
  });

  it.each([
    ['absent', undefined],
    ['empty', ''],
    ['an array', [VALID]],
    ['uppercase hex', VALID.toUpperCase()],
    ['uppercase in the trace id', `00-${TRACE_ID.replace('f', 'F')}-${SPAN_ID}-01`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${SPAN_ID}-01`],
    ['an all-zero parent id', `00-${TRACE_ID}-${'0'.repeat(16)}-01`],
    ['version ff', `ff-${TRACE_ID}-${SPAN_ID}-01`],
    ['version 01', `01-${TRACE_ID}-${SPAN_ID}-01`],
    ['a version 00 value with a further field', `${VALID}-abc`],
    ['a short trace id', `00-${TRACE_ID.slice(1)}-${SPAN_ID}-01`],
    ['a long parent id', `00-${TRACE_ID}-${SPAN_ID}0-01`],
    ['one-digit flags', `00-${TRACE_ID}-${SPAN_ID}-1`],
    ['non-hex flags', `00-${TRACE_ID}-${SPAN_ID}-0g`],
    ['underscores for dashes', VALID.replaceAll('-', '_')],
    ['spaces around it', ` ${VALID.slice(1)}`],
    ['two headers joined by node', `${VALID}, ${VALID}`],
    ['a control character', `00-${TRACE_ID.slice(0, 31)}\n-${SPAN_ID}-01`],
  ])('ignores %s', (_, value) => {
    expect(parseTraceparent(value)).toBeNull();
  });
});

const journalOf = () => {
  const sent: { message: string; fields?: JournalFields | undefined }[] = [];
  const journal: JournalSink = { send: (_p: number, message: string, fields?: JournalFields) => (sent.push({ message, fields }), true) };
  return { sent, journal };
};

describe('access log entries join traces', () => {
  it('give the traceparent ids in the text atoms, the JSON fields and the journal fields', async () => {
    const { entry } = await serve(request('/t', `traceparent: ${VALID}`));
    expect(compileAccessFormat('%(trace_id)s %(span_id)s %(s)s')(entry)).toBe(`${TRACE_ID} ${SPAN_ID} 200`);
    expect(JSON.parse(compileJsonAccess([])(entry))).toMatchObject({ path: '/t', trace_id: TRACE_ID, span_id: SPAN_ID });

    const { sent, journal } = journalOf();
    const log = createLogger({ accesslog: '-', access_log_format: '%(r)s %(trace_id)s', errorlog: '-', loglevel: 'info' }, { journal });
    log.access(entry);
    await log.close();
    expect(sent[0]!.message).toBe(`GET /t HTTP/1.1 ${TRACE_ID}`);
    expect(sent[0]!.fields).toMatchObject({ HTTP_PATH: '/t', TRACE_ID, SPAN_ID });
  });

  it('log a malformed traceparent nowhere: "-" in the text atoms, no JSON or journal fields', async () => {
    const bad = `00-${TRACE_ID}-${'0'.repeat(16)}-01`;
    const { entry } = await serve(request('/t', `traceparent: ${bad}`));
    expect(compileAccessFormat('%(trace_id)s %(span_id)s')(entry)).toBe('- -');
    const json = compileJsonAccess([])(entry);
    expect(json).not.toContain(TRACE_ID);
    expect(JSON.parse(json)).not.toHaveProperty('trace_id');
    const { sent, journal } = journalOf();
    const log = createLogger({ accesslog: '-', access_log_format: '%(r)s', errorlog: '-', loglevel: 'info' }, { journal });
    log.access(entry);
    await log.close();
    expect(sent[0]!.fields?.TRACE_ID).toBeUndefined();
    expect(JSON.stringify(sent[0]!.fields)).not.toContain(TRACE_ID);
  });

  describe("with OpenTelemetry's API registered by an agent", () => {
    afterEach(() => {
      context.disable();
    });

    it("take the active span's ids over the traceparent's, and the traceparent's outside a span", async () => {
      context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
      const span = new BasicTracerProvider().getTracer('test').startSpan('GET /t');
      const { entry } = await serve(request('/t', `traceparent: ${VALID}`));
      const inSpan = context.with(trace.setSpan(context.active(), span), () => traceOf(entry));
      expect(inSpan).toEqual({ traceId: span.spanContext().traceId, spanId: span.spanContext().spanId });
      expect(inSpan?.traceId).not.toBe(TRACE_ID);
      expect(traceOf(entry)).toEqual({ traceId: TRACE_ID, spanId: SPAN_ID });
      span.end();
    });

    it('give nothing for a request with neither', async () => {
      context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
      const { entry } = await serve(request('/t'));
      expect(traceOf(entry)).toBeNull();
    });
  });
});
