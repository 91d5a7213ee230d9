// The request checks of request-checks.ts, for a request that came as an HTTP/2
// stream. nghttp2 already resets a stream that RFC 9113 makes malformed (uppercase
// names, connection-specific fields, a second Host, a control character in the
// path, missing pseudo-headers) and drops any field whose value has a control
// character (RFC 9110 §5.5), so the app never sees one. This refuses the rest of
// what Gunicorn refuses for both protocols: more than one Content-Type, a Host
// naming another authority than :authority (RFC 9113 §8.3.1), and Gunicorn's
// limit_request_* limits (414, 431). Nothing is allocated.
import type { Settings } from '../settings/schema.js';

export type Http2Refusal = 0 | 400 | 414 | 431;

export function createHttp2Policy(
  settings: Pick<Settings, 'limit_request_line' | 'limit_request_fields' | 'limit_request_field_size'>,
): (rawHeaders: readonly string[]) => Http2Refusal {
  const lineLimit = settings.limit_request_line;
  const fieldLimit = settings.limit_request_field_size;
  const fieldsLimit = settings.limit_request_fields;
  return (raw) => {
    let method = '';
    let path = '';
    let authority: string | undefined;
    let host: string | undefined;
    let contentTypes = 0;
    let fields = 0;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const value = raw[i + 1]!;
      // Pseudo-headers carry the request line: limit_request_line counts them, as Gunicorn does.
      if (name.charCodeAt(0) === 0x3a) {
        if (name === ':method') method = value;
        else if (name === ':path') path = value;
        else if (name === ':authority') authority = value;
        continue;
      }
      if (++fields > fieldsLimit) return 431;
      if (fieldLimit !== 0 && name.length + value.length + 4 > fieldLimit) return 431;
      if (name === 'host') host = value;
      else if (name === 'content-type' && ++contentTypes > 1) return 400;
    }
    if (lineLimit !== 0 && method.length + path.length + 10 > lineLimit) return 414;
    if (host !== undefined && authority !== undefined && host.toLowerCase() !== authority.toLowerCase()) return 400;
    return 0;
  };
}
