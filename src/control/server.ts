// The master's end of the control socket: a Unix socket (never TCP), mode 0600
// (0660 with control_socket_group), answering the JSON-lines requests of
// protocol.ts. Each request goes to the master through one handler table. A
// client that sends too much, sends garbage or dawdles is answered once and
// cut off; none of this touches the workers or their requests.
// Loaded only when the socket is on, after the workers are ready.
import { chmodSync, chownSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { LineSplitter } from '../line-splitter.js';
import { groupId } from './socket-group.js';
import {
  ControlError,
  MAX_REQUEST_BYTES,
  PROTOCOL_VERSION,
  parseRequest,
  type ControlCommand,
  type ControlReply,
  type ControlRequest,
} from './protocol.js';

export type ControlHandlers = {
  [C in ControlCommand]: (request: Extract<ControlRequest, { cmd: C }>) => unknown;
};

/** A client must finish a request line this soon after connecting or after its last reply. */
const IDLE_MS = 10_000;
/** More clients than this at once are refused. */
const MAX_CLIENTS = 32;
/** Requests one client may send ahead of their replies. */
const MAX_QUEUED = 16;

export interface ControlServer {
  readonly path: string;
  close(): void;
}

/** Listens on `path`; rejects when it cannot (another server owns it, the directory is missing). */
export async function startControlServer(path: string, group: string | null, handlers: ControlHandlers): Promise<ControlServer> {
  await removeStale(path);
  const server = net.createServer({ allowHalfOpen: false }, (socket) => serve(socket, handlers));
  server.maxConnections = MAX_CLIENTS;
  // The socket file is created with the process umask: tighten it for bind(2),
  // so there is no moment when the socket is open to others.
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(umask);
  }
  if (group !== null) {
    chownSync(path, -1, groupId(group));
    chmodSync(path, 0o660);
  }
  return {
    path,
    close: () => {
      server.close();
      try {
        unlinkSync(path);
      } catch {
        // Already gone (the RuntimeDirectory is removed at stop).
      }
    },
  };
}

// A socket file left by a master that was killed: nothing answers on it. Anything
// else at that path (a mistyped setting naming a file) is never removed.
async function removeStale(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // Nothing there.
  }
  if (!isSocket) throw new Error(`${path} exists and is not a socket`);
  const answered = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (answered) throw new Error(`${path} is in use by another server`);
  unlinkSync(path);
}

function serve(socket: net.Socket, handlers: ControlHandlers): void {
  const lines = new LineSplitter();
  let busy = false;
  let refused = false;
  const queue: string[] = [];
  socket.setEncoding('utf8');
  socket.setTimeout(IDLE_MS, () => refuse('timed out waiting for a request'));
  socket.on('error', () => socket.destroy());

  const reply = (message: ControlReply): void => {
    if (!socket.destroyed) socket.write(`${JSON.stringify(message)}\n`);
  };
  const refuse = (error: string): void => {
    if (refused) return;
    refused = true;
    queue.length = 0;
    reply({ v: PROTOCOL_VERSION, ok: false, error });
    socket.end();
    socket.destroySoon();
  };

  // One request at a time per client, so replies come back in order.
  const next = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    let line: string | undefined;
    while ((line = queue.shift()) !== undefined) {
      const request = parseRequest(line);
      if (typeof request === 'string') return refuse(request);
      socket.setTimeout(0);
      try {
        const handler = handlers[request.cmd] as (r: ControlRequest) => unknown;
        reply({ v: PROTOCOL_VERSION, ok: true, result: await handler(request) });
      } catch (err) {
        reply({
          v: PROTOCOL_VERSION,
          ok: false,
          error: err instanceof ControlError ? err.message : `internal error: ${(err as Error).message}`,
        });
      }
      socket.setTimeout(IDLE_MS);
    }
    busy = false;
  };

  socket.on('data', (chunk: string) => {
    if (refused) return;
    for (const line of lines.push(chunk)) {
      if (Buffer.byteLength(line) > MAX_REQUEST_BYTES) return refuse(`request too large (the limit is ${MAX_REQUEST_BYTES} bytes)`);
      if (line.trim() !== '') queue.push(line);
      if (queue.length > MAX_QUEUED) return refuse(`more than ${MAX_QUEUED} requests waiting: wait for the replies`);
    }
    if (Buffer.byteLength(lines.pending) > MAX_REQUEST_BYTES) return refuse(`request too large (the limit is ${MAX_REQUEST_BYTES} bytes)`);
    void next();
  });
}
