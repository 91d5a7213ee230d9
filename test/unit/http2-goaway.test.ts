// goAwayAll, the drain of a worker's HTTP/2 sessions: GOAWAY with the last
// stream processed. What a proxy may retry on its strength (RFC 9113 §8.7): a
// stream the client sent before it read the GOAWAY, above that id, is never
// processed. Raw frames, since Node's client opens no stream once it has read a
// GOAWAY, as a proxy may have done a moment before.
import http2 from 'node:http2';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CLIENT_PREFACE, frame, literal, pseudoFields, statusOf } from '../helpers/http2.js';
import { goAwayAll, trackSessions } from '../../src/http2/servers.js';

const TYPE = { data: 0x0, headers: 0x1, settings: 0x4, ping: 0x6, goaway: 0x7 };
const [END_STREAM, ACK, END_HEADERS] = [0x1, 0x1, 0x4];

interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

/** A client of raw frames: hands the test every frame the server sends; resolves when the server closes. */
function rawClient(port: number, onFrame: (f: Frame, send: (b: Buffer) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(CLIENT_PREFACE));
    const send = (b: Buffer): void => void socket.write(b);
    let received = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      while (received.length >= 9 && received.length >= 9 + received.readUIntBE(0, 3)) {
        const length = received.readUIntBE(0, 3);
        const f = {
          type: received[3]!,
          flags: received[4]!,
          stream: received.readUInt32BE(5) & 0x7fffffff,
          payload: received.subarray(9, 9 + length),
        };
        received = received.subarray(9 + length);
        if (f.type === TYPE.settings && !(f.flags & ACK)) send(frame(TYPE.settings, ACK, 0, Buffer.alloc(0)));
        if (f.type === TYPE.ping && !(f.flags & ACK)) send(frame(TYPE.ping, ACK, 0, f.payload));
        onFrame(f, send);
      }
    });
    socket.on('error', reject);
    socket.on('close', () => resolve());
  });
}

const get = (stream: number, path: string): Buffer =>
  frame(TYPE.headers, END_STREAM | END_HEADERS, stream, Buffer.concat(pseudoFields(path).map(([n, v]) => literal(n, v))));

const goawayOf = (f: Frame) => ({ lastStream: f.payload.readUInt32BE(0) & 0x7fffffff, code: f.payload.readUInt32BE(4) });

let server: http2.Http2Server | undefined;
afterEach(() => {
  server?.close();
  server = undefined;
});

/** An HTTP/2 server whose sessions are tracked; `onRequest` gets each request and answers it. The paths it was asked. */
async function serve(onRequest: (res: http2.Http2ServerResponse) => void): Promise<{ port: number; served: string[] }> {
  const served: string[] = [];
  server = trackSessions(
    http2.createServer((req, res) => {
      served.push(req.url);
      onRequest(res);
    }),
  );
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, served };
}

describe('goAwayAll', () => {
  it('lets the open stream finish, and never processes a stream sent after the GOAWAY (safe for the client to retry)', async () => {
    let first: http2.Http2ServerResponse | undefined;
    // The request is in the app: the worker drains now, and answers it later.
    const { port, served } = await serve((res) => {
      first = res;
      goAwayAll(server!);
    });
    const goaways: Array<{ lastStream: number; code: number }> = [];
    const answered = new Map<number, number>();
    let body = '';
    const PROBE = Buffer.from('probe!!!');
    await rawClient(port, (f, send) => {
      if (f.type === TYPE.settings && !(f.flags & ACK) && served.length === 0) send(get(1, '/first'));
      if (f.type === TYPE.headers) answered.set(f.stream, statusOf(f.payload));
      if (f.type === TYPE.data && f.stream === 1) body += f.payload.toString();
      if (f.type === TYPE.goaway) {
        goaways.push(goawayOf(f));
        // A stream that left the client before it read the GOAWAY, as far as the server can tell;
        // the PING's ACK says the server has read it.
        if (goaways.length === 1) send(Buffer.concat([get(3, '/late'), frame(TYPE.ping, 0, 0, PROBE)]));
      }
      if (f.type === TYPE.ping && f.flags & ACK && f.payload.equals(PROBE)) first!.end('ok');
    });
    expect(goaways[0]).toEqual({ lastStream: 1, code: http2.constants.NGHTTP2_NO_ERROR });
    expect(Object.fromEntries(answered)).toEqual({ 1: 200 });
    expect(body).toBe('ok');
    expect(served).toEqual(['/first']);
  });

  it('a session that opens once the drain began gets GOAWAY at once, and none of its streams is processed', async () => {
    const { port, served } = await serve((res) => res.end('ok'));
    goAwayAll(server!);
    const goaways: Array<{ lastStream: number; code: number }> = [];
    await rawClient(port, (f, send) => {
      if (f.type === TYPE.settings && !(f.flags & ACK) && goaways.length === 0) send(get(1, '/late'));
      if (f.type === TYPE.goaway) goaways.push(goawayOf(f));
    });
    expect(goaways[0]).toEqual({ lastStream: 0, code: http2.constants.NGHTTP2_NO_ERROR });
    expect(served).toEqual([]);
  });
});
