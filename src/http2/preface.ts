// What a cleartext connection opens with, read before deciding which server gets it.
import type net from 'node:net';

// RFC 9113 §3.4: a client with prior knowledge opens with this preface, then a SETTINGS frame.
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Whether `received` can still be, or starts with, the preface. */
export function mayBePreface(received: Buffer): boolean {
  const n = Math.min(received.length, PREFACE.length);
  return received.compare(PREFACE, 0, n, 0, n) === 0;
}

/**
 * Collects the bytes `socket` sends, after `received`, until `settle` takes
 * them (returns true): it then owns the socket. A socket that ends, fails or
 * has not been settled within `timeoutMs` is destroyed.
 */
export function readOpening(socket: net.Socket, received: Buffer, timeoutMs: number, settle: (received: Buffer) => boolean): void {
  const done = (): void => {
    clearTimeout(timer);
    socket.off('data', onData).off('error', fail).off('end', fail);
  };
  const fail = (): void => {
    done();
    socket.destroy();
  };
  const timer = setTimeout(fail, timeoutMs);
  const onData = (chunk: Buffer): void => {
    received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
    if (settle(received)) done();
  };
  socket.on('data', onData).on('error', fail).on('end', fail);
  if (received.length > 0 && settle(received)) done();
}
