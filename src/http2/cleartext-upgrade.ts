// h2c by HTTP/1.1 Upgrade (RFC 7540 §3.2; RFC 9113 deprecates it, Gunicorn's
// http2_cleartext = upgrade still offers it): node:http2 has no server side of
// it, so after answering 101 the connection is handed to the HTTP/2 server as
// if the client had opened it with the preface, its SETTINGS frame and then the
// upgraded request as stream 1 (§3.2: "the HTTP/1.1 request that is sent prior
// to upgrade is assigned a stream identifier of 1"), which is how nghttp2 sees
// it in its own upgrade.
import type { IncomingMessage } from 'node:http';
import type { Http2Server } from 'node:http2';
import type net from 'node:net';
import { mayBePreface, PREFACE, readOpening } from './preface.js';

// RFC 9113 §3.4: the client preface is followed by a SETTINGS frame (type 0x4).
const FRAME_HEADER = 9;
const SETTINGS = 0x4;
const HEADERS = 0x1;
const END_STREAM_AND_HEADERS = 0x1 | 0x4;
// The smallest SETTINGS_MAX_FRAME_SIZE a peer may have (RFC 9113 §4.2): a larger
// header block would need CONTINUATION frames. Node's HTTP/1.1 parser takes 16 KiB
// of header at most, so only a request near that limit is refused for it (431).
const MAX_HEADER_BLOCK = 16384;
// RFC 9113 §8.2.2: connection-specific fields are not sent over HTTP/2; Host becomes :authority.
const NOT_FORWARDED = new Set(['connection', 'upgrade', 'http2-settings', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'host']);
const SWITCHING = 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n';

/**
 * Whether this HTTP/1.1 request may be upgraded: `Upgrade: h2c` with exactly
 * one HTTP2-Settings field (RFC 7540 §3.2.1), no body (a body would have to be
 * read before the first frame, §3.2; the server may ignore Upgrade, RFC 9110
 * §7.8) and a method that has a :path.
 */
export function asksForH2c(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  if (upgrade === undefined || !upgrade.split(',').some((token) => token.trim().toLowerCase() === 'h2c')) return false;
  if (req.method === 'CONNECT' || req.headers['transfer-encoding'] !== undefined) return false;
  if (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') return false;
  let settingsFields = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() === 'http2-settings') settingsFields++;
  }
  return settingsFields === 1 && /^[A-Za-z0-9_-]*={0,2}$/.test(req.headers['http2-settings'] as string);
}

// RFC 7541 §5.1: an integer with an N-bit prefix, the first byte's high bits given.
function hpackInteger(value: number, prefixBits: number, firstByte: number, out: number[]): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(firstByte | value);
    return;
  }
  out.push(firstByte | max);
  for (value -= max; value >= 128; value = Math.floor(value / 128)) out.push((value % 128) + 128);
  out.push(value);
}

// RFC 7541 §6.2.2: literal header field without indexing, new name, no Huffman coding.
function hpackLiteral(name: string, value: string, out: number[]): void {
  out.push(0);
  for (const text of [name, value]) {
    const bytes = Buffer.from(text, 'latin1');
    hpackInteger(bytes.length, 7, 0, out);
    for (const byte of bytes) out.push(byte);
  }
}

/** The upgraded request as a HEADERS frame on stream 1 ending the stream, or null when too large. */
function requestAsStreamOne(req: IncomingMessage): Buffer | null {
  const block: number[] = [];
  hpackLiteral(':method', req.method!, block);
  hpackLiteral(':scheme', 'http', block);
  if (req.headers.host !== undefined) hpackLiteral(':authority', req.headers.host, block);
  hpackLiteral(':path', req.url!, block);
  const named = new Set((req.headers.connection ?? '').split(',').map((token) => token.trim().toLowerCase()));
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    if (NOT_FORWARDED.has(name) || named.has(name)) continue;
    if (name === 'te' && req.rawHeaders[i + 1]!.trim().toLowerCase() !== 'trailers') continue;
    hpackLiteral(name, req.rawHeaders[i + 1]!, block);
  }
  if (block.length > MAX_HEADER_BLOCK) return null;
  const frame = Buffer.alloc(FRAME_HEADER + block.length);
  frame.writeUIntBE(block.length, 0, 3);
  frame[3] = HEADERS;
  frame[4] = END_STREAM_AND_HEADERS;
  frame.writeUInt32BE(1, 5);
  frame.set(block, FRAME_HEADER);
  return frame;
}

/**
 * Answers 101 and, once the client's preface and SETTINGS frame are in, hands
 * the connection to `sessions` with stream 1 carrying `req`. A request too large
 * for one HEADERS frame is answered 431 instead; a client that does not follow
 * the 101 with the preface within `timeoutMs` is disconnected.
 */
export function upgradeToHttp2(req: IncomingMessage, socket: net.Socket, head: Buffer, sessions: Http2Server, timeoutMs: number): void {
  const streamOne = requestAsStreamOne(req);
  if (streamOne === null) {
    socket.end('HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  socket.write(SWITCHING);
  // Waits for the preface and the whole SETTINGS frame after it, then inserts stream 1 behind them.
  readOpening(socket, head, timeoutMs, (received) => {
    if (!mayBePreface(received)) {
      socket.destroy();
      return true;
    }
    if (received.length < PREFACE.length + FRAME_HEADER) return false;
    if (received[PREFACE.length + 3] !== SETTINGS) {
      socket.destroy();
      return true;
    }
    const settingsEnd = PREFACE.length + FRAME_HEADER + received.readUIntBE(PREFACE.length, 3);
    if (received.length < settingsEnd) return false;
    socket.pause();
    socket.unshift(Buffer.concat([received.subarray(0, settingsEnd), streamOne, received.subarray(settingsEnd)]));
    sessions.emit('connection', socket);
    return true;
  });
  socket.resume();
}
