// The master's listening sockets. The master binds (or inherits from systemd) and
// never accepts; each worker inherits the fds and calls accept() itself, so the
// kernel spreads connections over workers without the master in the path.
import { lookup } from 'node:dns/promises';
import { chmodSync, existsSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { getSystemErrorName } from 'node:util';
import { formatAddress, needsLookup, type Address } from './settings/kinds.js';

export interface ListenSocket {
  fd: number;
  /** How logs name it: http://127.0.0.1:8000, unix:/run/app.sock, fd://3 (NAME). */
  label: string;
  /** For the health check: where to connect to reach the workers. */
  target: { host: string; port: number } | { socketPath: string } | null;
  /** The bound address, where known (an inherited unix socket's path is not). */
  address: Address | null;
  close(): void;
}

export class BindError extends Error {}

interface RawHandle {
  fd: number;
  close(): void;
  getsockname?(out: { address?: string; port?: number }): number;
}

// net._createServerHandle is what node:cluster's primary uses to bind a socket
// without listening on it: a listening socket in the master would make the
// master's own event loop accept connections.
const createServerHandle = (
  net as unknown as {
    _createServerHandle: (address: string | null, port: number, addressType: number, fd?: number) => RawHandle | number;
  }
)._createServerHandle;

/**
 * Binds every address. A host name binds each address it resolves to, as
 * Gunicorn does (localhost: 127.0.0.1 and ::1 where both exist); with port 0,
 * all of them on the port the first one got.
 */
export async function bindAddresses(addresses: Address[], scheme: 'http' | 'https'): Promise<ListenSocket[]> {
  const sockets: ListenSocket[] = [];
  try {
    for (const address of addresses) {
      if (address.kind !== 'tcp' || !needsLookup(address.host)) {
        sockets.push(bindAddress(address, scheme));
        continue;
      }
      let found: string[];
      try {
        found = [...new Set((await lookup(address.host, { all: true })).map((a) => a.address))];
      } catch (err) {
        throw new BindError(
          `Cannot bind ${formatAddress(address)}: the host name ${address.host} does not resolve (${(err as NodeJS.ErrnoException).code})`,
        );
      }
      let port = address.port;
      for (const host of found) {
        const socket = bindAddress({ kind: 'tcp', host, port }, scheme);
        port = (socket.address as { port: number }).port;
        sockets.push(socket);
      }
    }
  } catch (err) {
    for (const socket of sockets) socket.close();
    throw err;
  }
  return sockets;
}

function bindAddress(address: Address, scheme: 'http' | 'https'): ListenSocket {
  if (address.kind === 'fd') return inheritSocket(address.fd, `fd://${address.fd}`, scheme);
  const label = address.kind === 'unix' ? formatAddress(address) : `${scheme}://${formatAddress(address)}`;
  if (address.kind === 'unix') removeStaleUnixSocket(address.path);
  const handle =
    address.kind === 'unix'
      ? createServerHandle(address.path, -1, -1)
      : createServerHandle(address.host, address.port, net.isIPv6(address.host) ? 6 : 4);
  if (typeof handle === 'number') throw new BindError(describeBindFailure(address, getSystemErrorName(handle)));
  if (address.kind === 'unix') chmodSync(address.path, 0o666);
  let port = 0;
  if (address.kind === 'tcp') {
    // libuv defers a bind's EADDRINUSE to listen(), which the master never calls:
    // a socket whose bind failed is still unbound (port 0).
    const out: { port?: number } = {};
    handle.getsockname?.(out);
    port = out.port ?? 0;
    if (port === 0) {
      handle.close();
      throw new BindError(describeBindFailure(address, 'EADDRINUSE'));
    }
  }
  const target = address.kind === 'unix' ? { socketPath: address.path } : { host: reachableHost(address.host), port };
  const shownLabel = address.kind === 'tcp' && address.port === 0 ? `${scheme}://${formatAddress({ ...address, port })}` : label;
  return {
    fd: handle.fd,
    label: shownLabel,
    target,
    address: address.kind === 'tcp' ? { ...address, port } : address,
    close() {
      handle.close();
      if (address.kind === 'unix') {
        try {
          unlinkSync(address.path);
        } catch {
          // Already gone: nothing to clean up.
        }
      }
    },
  };
}

/** Where to connect to a socket bound to `host`: a wildcard address is reached on the loopback of its family. */
function reachableHost(host: string): string {
  return host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
}

/**
 * A socket opened by someone else (systemd, a parent process): described by its
 * bound address where it is TCP, and never closed or unlinked by us.
 */
export function inheritSocket(fd: number, origin: string, scheme: 'http' | 'https'): ListenSocket {
  const handle = createServerHandle(null, 0, 0, fd);
  const out: { address?: string; port?: number } = {};
  if (typeof handle !== 'number') handle.getsockname?.(out);
  const tcp = out.port !== undefined && out.address !== undefined;
  const target = tcp ? { host: reachableHost(out.address!), port: out.port! } : null;
  const label = tcp ? `${scheme}://${formatAddress({ kind: 'tcp', host: out.address!, port: out.port! })} (${origin})` : origin;
  // The handle only describes the fd; it stays open (closing it would close the fd).
  return { fd, label, target, address: tcp ? { kind: 'tcp', host: out.address!, port: out.port! } : null, close() {} };
}

/**
 * Listens at address for a moment and closes again: for metrics_bind, which the
 * master serves only once its workers are up, to fail before anything is forked.
 */
export async function checkCanListen(setting: string, address: Address & { kind: 'tcp' }): Promise<void> {
  const server = net.createServer();
  const code = await new Promise<string | null>((resolve) => {
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? String(err)));
    server.listen(address.port, address.host, () => resolve(null));
  });
  await new Promise((resolve) => server.close(resolve));
  if (code !== null) throw new BindError(`${setting}: ${describeBindFailure(address, code)}`);
}

function describeBindFailure(address: Address, code: string): string {
  const shown = formatAddress(address);
  if (code === 'EADDRINUSE' && address.kind === 'tcp') {
    return (
      `Connection in use: ${shown} (EADDRINUSE). Another process is listening there: ` +
      `find it with \`sudo ss -ltnp 'sport = :${address.port}'\` or \`sudo lsof -i :${address.port}\`, ` +
      `stop it or bind elsewhere (-b HOST:PORT)`
    );
  }
  if (code === 'EACCES' && address.kind === 'tcp') {
    return `Permission denied binding ${shown}: ports below 1024 need root or CAP_NET_BIND_SERVICE; use a higher port or systemd socket activation`;
  }
  // libuv reports a socket path in a missing directory as EACCES.
  if (address.kind === 'unix' && !existsSync(path.dirname(address.path))) {
    return `Cannot bind ${shown}: the directory ${path.dirname(address.path)} does not exist: create it (systemd: RuntimeDirectory=) or bind elsewhere`;
  }
  if (code === 'EADDRNOTAVAIL') return `Cannot bind ${shown}: no network interface has that address (EADDRNOTAVAIL)`;
  return `Cannot bind ${shown}: ${code}`;
}

// A unix socket file left by a crashed run would make bind fail with EADDRINUSE;
// like Gunicorn, replace an existing socket file (never any other kind of file).
function removeStaleUnixSocket(path: string): void {
  try {
    if (!lstatSync(path).isSocket()) return;
  } catch {
    return;
  }
  unlinkSync(path);
}
