// Spreads connections that arrive together over the workers. Every worker polls
// the shared listening socket, and the kernel wakes them all for a new
// connection; the one that runs first takes it. When a client opens many at once
// (the h2 backend pool of a proxy, h2load -c64, a keep-alive pool), a worker
// that is already running keeps winning while the others wait to be scheduled,
// and keeps what it took for the connections' whole life (measured: 64 to 0).
//
// So a worker that has accepted BURST connections in a row, with none of its
// connections closing in between, stops polling for a moment: the others take
// the next ones. Connection: close traffic closes connections between accepts:
// it pauses only when a worker that fell behind takes 8 waiting ones at once
// (about once per 100 accepts under wrk -c64). Per connection, the cost is
// reading each server's connection count. libuv's accept loop still takes the
// connections already pending in the wake-up the pause begins in.
import type net from 'node:net';

/** What net.Server keeps of its own: the listening handle and its count of open connections. */
interface ListeningServer {
  _handle: ListenHandle | null;
  _connections: number;
}

interface ListenHandle {
  readStart(): number;
  readStop(): number;
  onconnection: (this: ListenHandle, err: number, clientHandle: unknown) => void;
}

/** Accepts in a row, without a close, before a worker lets the others take the next connections. */
const BURST = 8;
/** Long enough for a worker waiting to be scheduled to run (1 ms left 5 of 64 to one worker on a loaded machine). */
const PAUSE_MS = 2;
// Taken as tsgunicorn loads, before the app: an app or agent that replaces the
// global (fake timers, context propagation) neither sees these timers nor can stall accepting.
const later = globalThis.setTimeout;

/**
 * Over all of the worker's sockets. While max_connections has paused accepting
 * (limitConnections), a pause that ends does not start it again.
 */
export function spreadAccepts(servers: net.Server[], maxConnections: number): void {
  const internals = servers as unknown as ListeningServer[];
  let lastOpen = 0;
  let inARow = 0;
  const open = (): number => {
    let count = 0;
    for (const server of internals) count += server._connections;
    return count;
  };
  const resume = (): void => {
    if (maxConnections > 0 && open() >= maxConnections) return;
    // A server the app or a drain closed has no handle any more and stays closed.
    for (const { _handle } of internals) _handle?.readStart();
  };
  for (const server of internals) {
    const handle = server._handle!;
    const accept = handle.onconnection;
    handle.onconnection = function (err, clientHandle) {
      accept.call(this, err, clientHandle);
      const now = open();
      inARow = now > lastOpen ? inARow + 1 : 0;
      lastOpen = now;
      if (inARow < BURST) return;
      inARow = 0;
      // A listening handle does not count as reading until readStart: without it readStop does nothing.
      for (const { _handle } of internals) {
        _handle?.readStart();
        _handle?.readStop();
      }
      later(resume, PAUSE_MS);
    };
  }
}
