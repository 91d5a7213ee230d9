// When a worker polls its listening sockets. Two reasons stop it, both on the
// same handles: max_connections, and a burst of new connections that the other
// workers should share.
//
// max_connections, per worker over all its sockets: at the limit the worker
// stops accepting (its listening handles stop polling), so the kernel hands new
// connections to the other workers, or holds them in the backlog while every
// worker is full; it accepts again once one closes. Node's own maxConnections
// would accept and then reset them instead. A connection accepted in the same
// wake-up as the one that reached the limit is served, not reset: the limit may
// be passed by those few.
//
// Bursts: every worker polls the shared listening socket, and the kernel wakes
// them all for a new connection; the one that runs first takes it. When a client
// opens many at once (the h2 backend pool of a proxy, h2load -c64, a keep-alive
// pool), a worker that is already running keeps winning while the others wait to
// be scheduled, and keeps what it took for the connections' whole life
// (measured: 64 to 0). So a worker that has accepted BURST connections in a row,
// with none of its connections closing in between, stops polling for a moment:
// the others take the next ones. Connection: close traffic closes connections
// between accepts: it pauses only when a worker that fell behind takes 8 waiting
// ones at once (about once per 100 accepts under wrk -c64). libuv's accept loop
// still takes the connections already pending in the wake-up a pause begins in.
//
// The count is the one each server keeps (what getConnections reports), read as
// a connection is accepted and as one closes: no listener per connection, which
// Connection: close traffic would pay on every request.
import type net from 'node:net';

interface ListenHandle {
  readStart(): number;
  readStop(): number;
  onconnection: (this: ListenHandle, err: number, clientHandle: unknown) => void;
}

/** What net.Server keeps of its own: the listening handle and its count of open connections. */
interface ServerInternals {
  _handle: ListenHandle | null;
  _connections: number;
  _emitCloseIfDrained: (this: ServerInternals) => void;
}

/** Accepts in a row, without a close, before a worker lets the others take the next connections. */
const BURST = 8;
/** Long enough for a worker waiting to be scheduled to run (1 ms left 5 of 64 to one worker on a loaded machine). */
const PAUSE_MS = 2;
// Taken as tsgunicorn loads, before the app: an app or agent that replaces the
// global (fake timers, context propagation) neither sees these timers nor can stall accepting.
const later = globalThis.setTimeout;

/** Over all of the worker's sockets; maxConnections 0 is no limit; onFull is called each time the limit stops accepting. */
export function controlAccepting(servers: net.Server[], maxConnections: number, onFull: () => void): void {
  const internals = servers as unknown as ServerInternals[];
  let full = false;
  let spreading = false;
  let lastOpen = 0;
  let inARow = 0;
  const open = (): number => {
    let count = 0;
    for (const server of internals) count += server._connections;
    return count;
  };
  const stopPolling = (): void => {
    // A listening handle does not count as reading until readStart: without it readStop does nothing.
    for (const { _handle } of internals) {
      _handle?.readStart();
      _handle?.readStop();
    }
  };
  const pollAgainUnlessHeld = (): void => {
    // A server the app or a drain closed has no handle any more and stays closed.
    if (!full && !spreading) for (const { _handle } of internals) _handle?.readStart();
  };
  const endSpreading = (): void => {
    spreading = false;
    pollAgainUnlessHeld();
  };
  for (const server of internals) {
    const handle = server._handle!;
    const accept = handle.onconnection;
    handle.onconnection = function (err, clientHandle) {
      accept.call(this, err, clientHandle);
      const now = open();
      inARow = now > lastOpen ? inARow + 1 : 0;
      lastOpen = now;
      if (inARow >= BURST) {
        inARow = 0;
        spreading = true;
        stopPolling();
        later(endSpreading, PAUSE_MS);
      }
      if (maxConnections > 0 && !full && now >= maxConnections) {
        full = true;
        stopPolling();
        onFull();
      }
    };
    if (maxConnections === 0) continue;
    // Node calls it as each connection of the server closes, once the count is down.
    const closed = server._emitCloseIfDrained;
    server._emitCloseIfDrained = function () {
      if (full && open() < maxConnections) {
        full = false;
        pollAgainUnlessHeld();
      }
      closed.call(this);
    };
  }
}
