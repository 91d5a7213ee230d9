// HTTP/2 clients for tests: Node's http2 client, and hand-made frames for what
// Node's client refuses to send (control characters, a Host beside :authority
// that differs).
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';

export interface Http2Reply {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: string;
}

export interface Http2RequestOptions {
  headers?: http2.OutgoingHttpHeaders;
  body?: string;
  /** A CA to trust for https:// (a self-signed certificate). */
  ca?: Buffer;
  /** Reuse this session instead of opening one (and leave it open). */
  session?: http2.ClientHttp2Session;
}

/** One request on a session of its own (so, on a new connection), closed after it. */
export async function h2request(url: string, options: Http2RequestOptions = {}): Promise<Http2Reply> {
  const { origin, pathname, search } = new URL(url);
  const session = options.session ?? http2.connect(origin, options.ca ? { ca: options.ca } : {});
  try {
    return await new Promise<Http2Reply>((resolve, reject) => {
      session.once('error', reject);
      const stream = session.request({ ':path': pathname + search, ...options.headers });
      let body = '';
      let head: http2.IncomingHttpHeaders = {};
      stream.setEncoding('utf8');
      stream.on('response', (h) => (head = h));
      stream.on('data', (d: string) => (body += d));
      stream.on('end', () => resolve({ status: Number(head[':status']), headers: head, body }));
      stream.on('error', reject);
      stream.end(options.body);
    });
  } finally {
    if (!options.session) session.close();
  }
}

/** The pseudo-header fields of a request to example.com, for rawH2Get. */
export function pseudoFields(path = '/', method = 'GET'): [string, string][] {
  return [
    [':method', method],
    [':scheme', 'http'],
    [':authority', 'example.com'],
    [':path', path],
  ];
}

/** The preface and an empty SETTINGS frame: what opens every HTTP/2 connection (RFC 9113 §3.4). */
export const CLIENT_PREFACE = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(0x4, 0, 0, Buffer.alloc(0))]);

export function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

// HPACK literal field without indexing, new name, no Huffman (RFC 7541 §6.2.2),
// for strings shorter than 127 bytes.
export function literal(name: string, value: string): Buffer {
  const n = Buffer.from(name, 'latin1');
  const v = Buffer.from(value, 'latin1');
  return Buffer.concat([Buffer.from([0, n.length]), n, Buffer.from([v.length]), v]);
}

/**
 * Sends one GET as raw frames (prior knowledge, or over `tlsOptions`' connection)
 * with exactly the fields given, and resolves with the response's status code
 * or 'reset' when the server reset the stream or the connection.
 */
export async function rawH2Get(port: number, fields: [string, string][], tlsOptions?: tls.ConnectionOptions): Promise<number | 'reset'> {
  const reply = await rawH2Exchange(port, fields, tlsOptions);
  return reply === 'reset' ? reply : reply.status;
}

/** rawH2Get's exchange, with the response body. */
export function rawH2Exchange(
  port: number,
  fields: [string, string][],
  tlsOptions?: tls.ConnectionOptions,
  /** Bytes before the preface: a PROXY header. */
  prefix: Buffer = Buffer.alloc(0),
): Promise<{ status: number; body: string } | 'reset'> {
  const block = Buffer.concat(fields.map(([n, v]) => literal(n, v)));
  // END_STREAM | END_HEADERS on stream 1.
  const request = Buffer.concat([prefix, CLIENT_PREFACE, frame(0x1, 0x5, 1, block)]);
  let status = 0;
  let body = '';
  return new Promise((resolve, reject) => {
    const socket = tlsOptions
      ? tls.connect({ port, host: '127.0.0.1', ALPNProtocols: ['h2'], ...tlsOptions })
      : net.connect(port, '127.0.0.1');
    socket.once(tlsOptions ? 'secureConnect' : 'connect', () => socket.write(request));
    let received = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      while (received.length >= 9 && received.length >= 9 + received.readUIntBE(0, 3)) {
        const length = received.readUIntBE(0, 3);
        const [type, flags] = [received[3]!, received[4]!];
        const id = received.readUInt32BE(5) & 0x7fffffff;
        const payload = received.subarray(9, 9 + length);
        received = received.subarray(9 + length);
        if (type === 0x1 && id === 1) status = statusOf(payload);
        if (type === 0x0 && id === 1) body += payload.toString('latin1');
        // END_STREAM, on HEADERS or DATA.
        if ((type === 0x1 || type === 0x0) && id === 1 && flags & 0x1) {
          socket.destroy();
          resolve({ status, body });
          return;
        }
        if ((type === 0x3 && id === 1) || type === 0x7) {
          socket.destroy();
          resolve('reset');
          return;
        }
      }
    });
    socket.on('error', reject);
    socket.on('close', () => resolve('reset'));
  });
}

// The response's first field is :status; Node's encoder sends the statuses of
// HPACK's static table (200, 204, 206, 304, 400, 404, 500: RFC 7541 Appendix A)
// indexed, and others as a literal with :status's indexed name (index 8), its
// three digits not Huffman-coded (no shorter).
const INDEXED_STATUS: Record<number, number> = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 };
export function statusOf(block: Buffer): number {
  const first = block[0]!;
  if (first & 0x80 && INDEXED_STATUS[first & 0x7f] !== undefined) return INDEXED_STATUS[first & 0x7f]!;
  if ((first === 0x48 || first === 0x08) && block[1] === 3) return Number(block.subarray(2, 5).toString('latin1'));
  throw new Error(`a :status this helper does not decode: ${block.toString('hex')}`);
}

export interface Http2LoadResult {
  completed: number;
  /** Streams the server refused unprocessed (REFUSED_STREAM, RFC 9113 §8.7), sent again on a new session as clients do. */
  retried: number;
  failed: number;
  /** Sessions that got GOAWAY. */
  goaways: number;
  errors: string[];
  /** Response bodies and how many times each came. */
  bodies: Map<string, number>;
}

/**
 * `clients` sessions, each with `streams` requests in flight at all times, for
 * `durationMs`. A session that gets GOAWAY is replaced by a new one, as an
 * HTTP/2 client replaces it; any stream that ends otherwise than with a 200 or
 * REFUSED_STREAM is a failure.
 */
export async function h2load(opts: {
  url: string;
  clients: number;
  streams: number;
  durationMs: number;
  ca?: Buffer;
}): Promise<Http2LoadResult> {
  const { origin, pathname } = new URL(opts.url);
  const result: Http2LoadResult = { completed: 0, retried: 0, failed: 0, goaways: 0, errors: [], bodies: new Map() };
  const deadline = Date.now() + opts.durationMs;
  const open: http2.ClientHttp2Session[] = [];
  const goneAway = new WeakSet<http2.ClientHttp2Session>();
  const connect = (): http2.ClientHttp2Session => {
    const session = http2.connect(origin, opts.ca ? { ca: opts.ca } : {});
    session.on('error', () => {});
    session.once('goaway', () => {
      goneAway.add(session);
      result.goaways++;
    });
    open.push(session);
    return session;
  };

  async function client(): Promise<void> {
    let session = connect();
    const one = (): Promise<void> =>
      new Promise((resolve) => {
        if (session.closed || session.destroyed || goneAway.has(session)) session = connect();
        let stream: http2.ClientHttp2Stream;
        try {
          stream = session.request({ ':path': pathname });
        } catch {
          // The session got GOAWAY before this stream went out: it never reached the server.
          result.retried++;
          session = connect();
          resolve();
          return;
        }
        let status = 0;
        let body = '';
        stream.setEncoding('utf8');
        stream.on('response', (h) => (status = Number(h[':status'])));
        stream.on('data', (d: string) => (body += d));
        // What ended the stream is read from rstCode as it closes.
        stream.on('error', () => {});
        stream.on('close', () => {
          if (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) {
            result.retried++;
          } else if (status === 200 && stream.rstCode === http2.constants.NGHTTP2_NO_ERROR) {
            result.completed++;
            result.bodies.set(body, (result.bodies.get(body) ?? 0) + 1);
          } else {
            result.failed++;
            if (result.errors.length < 20) result.errors.push(`status ${status}, rst ${stream.rstCode}`);
          }
          resolve();
        });
        stream.end();
      });
    await Promise.all(
      Array.from({ length: opts.streams }, async () => {
        while (Date.now() < deadline) await one();
      }),
    );
  }
  await Promise.all(Array.from({ length: opts.clients }, client));
  for (const session of open) session.close();
  return result;
}

/** Runs `use` with a session to `url`, closed after it. */
export async function withSession<T>(url: string, use: (session: http2.ClientHttp2Session) => Promise<T>): Promise<T> {
  const session = http2.connect(url);
  try {
    return await use(session);
  } finally {
    session.close();
  }
}

/** The error code of the GOAWAY the session gets next. */
export const goawayOf = (session: http2.ClientHttp2Session) => new Promise<number>((resolve) => session.once('goaway', resolve));

/** Opens a POST stream on `session`, sends part of a body that never ends, and returns the code it is reset with. */
export async function stalledBodyReset(session: http2.ClientHttp2Session, path: string): Promise<number> {
  const stream = session.request({ ':method': 'POST', ':path': path });
  stream.write('part of a body that never ends');
  stream.on('error', () => {});
  await new Promise((resolve) => stream.once('close', resolve));
  return stream.rstCode;
}
