// A worker that accepts connections in a burst stops polling its sockets for a
// moment, so that the other workers of the shared socket take the next ones.
// Real sockets, accepted by a child process as a worker accepts them; the
// child's pauses end only when the test says so, whatever the machine's load.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { builtModule } from '../helpers/loaded-modules.js';
import { FIXTURES } from '../helpers/tsgunicorn.js';

interface Report {
  accepted: number[];
  pauses: number;
  probed: number;
}

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const close of cleanup) close();
  cleanup = [];
});

/** A child accepting on `count` sockets of ours; the test's own copies are closed once it has them. */
async function acceptor(count: number, maxConnections: number, mode = '') {
  const servers = await Promise.all(
    Array.from({ length: count }, async () => {
      const server = net.createServer().listen(0, '127.0.0.1');
      await once(server, 'listening');
      return server;
    }),
  );
  const fds = servers.map((s) => (s as unknown as { _handle: { fd: number } })._handle.fd);
  const child: ChildProcess = spawn(
    process.execPath,
    [
      path.join(FIXTURES, 'accept-spread-sockets.mjs'),
      builtModule(mode === 'serve' ? 'worker/serve.js' : 'worker/accepting.js'),
      String(maxConnections),
      String(count),
      mode,
    ],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc', ...fds] },
  );
  cleanup.push(() => child.kill());
  let last: Report = { accepted: servers.map(() => 0), pauses: 0, probed: 0 };
  const waiters = new Set<() => void>();
  const ready = new Promise<number>((resolve) =>
    child.on('message', (message: Report | { probePort: number }) => {
      if ('probePort' in message) return resolve(message.probePort);
      last = message;
      for (const check of waiters) check();
    }),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  const probePort = await ready;
  for (const server of servers) server.close();
  /** Resolves with the first report that satisfies `test`. */
  const reported = (test: (r: Report) => boolean): Promise<Report> =>
    new Promise((resolve) => {
      const check = () => {
        if (!test(last)) return;
        waiters.delete(check);
        resolve(last);
      };
      waiters.add(check);
      check();
    });
  return {
    ports,
    reported,
    endPause: () => child.send('end-pause'),
    /** The report after the child accepted a connection made after every connection so far. */
    afterPending: async (): Promise<Report> => {
      const before = last.probed;
      await connect(probePort, 1);
      return reported((r) => r.probed > before);
    },
  };
}

/** Opens `count` connections at once; resolves when the kernel has completed every handshake. */
async function connect(port: number, count: number): Promise<void> {
  const clients = Array.from({ length: count }, () => net.connect(port, '127.0.0.1'));
  cleanup.push(() => clients.forEach((c) => c.destroy()));
  await Promise.all(clients.map((c) => once(c, 'connect')));
}

it('stops accepting after 8 connections in a row, and starts again when the pause ends', async () => {
  const worker = await acceptor(1, 0);
  await connect(worker.ports[0]!, 8);
  expect(await worker.reported((r) => r.accepted[0] === 8)).toMatchObject({ pauses: 1 });
  await connect(worker.ports[0]!, 4);
  expect((await worker.afterPending()).accepted).toEqual([8]);
  worker.endPause();
  expect(await worker.reported((r) => r.accepted[0] === 12)).toMatchObject({ accepted: [12], pauses: 0 });
});

it('never pauses for connections that close between accepts (Connection: close traffic)', async () => {
  const worker = await acceptor(1, 0, 'close');
  for (let i = 1; i <= 20; i++) {
    const client = net.connect(worker.ports[0]!, '127.0.0.1');
    await once(client, 'close');
    // A pause would leave the ninth unaccepted until the test ended it: never.
    expect(await worker.reported((r) => r.accepted[0] === i)).toMatchObject({ pauses: 0 });
  }
});

it('ends a pause with its own timer, whatever the app does to setTimeout', async () => {
  const worker = await acceptor(1, 0, 'app-timers');
  await connect(worker.ports[0]!, 8);
  await worker.reported((r) => r.accepted[0] === 8);
  await connect(worker.ports[0]!, 4);
  // The app's setTimeout never calls back: only the worker's own timer lets these in.
  expect(await worker.reported((r) => r.accepted[0] === 12)).toMatchObject({ pauses: 0 });
});

it("counts the accepts of all of a worker's sockets together and pauses them all", async () => {
  const worker = await acceptor(2, 0);
  await connect(worker.ports[0]!, 4);
  await worker.reported((r) => r.accepted[0] === 4);
  await connect(worker.ports[1]!, 4);
  expect(await worker.reported((r) => r.accepted[1] === 4)).toMatchObject({ pauses: 1 });
  await Promise.all([connect(worker.ports[0]!, 2), connect(worker.ports[1]!, 2)]);
  expect((await worker.afterPending()).accepted).toEqual([4, 4]);
  worker.endPause();
  expect((await worker.reported((r) => r.accepted[0] === 6 && r.accepted[1] === 6)).accepted).toEqual([6, 6]);
});

it('does not start accepting again at the end of a pause while max_connections is reached', async () => {
  const worker = await acceptor(1, 8);
  await connect(worker.ports[0]!, 8);
  await worker.reported((r) => r.accepted[0] === 8 && r.pauses === 1);
  worker.endPause();
  await worker.reported((r) => r.pauses === 0);
  await connect(worker.ports[0]!, 1);
  expect((await worker.afterPending()).accepted).toEqual([8]);
});

it("pauses a worker's HTTP server on every socket it serves on", async () => {
  const worker = await acceptor(2, 0, 'serve');
  await connect(worker.ports[0]!, 4);
  await connect(worker.ports[1]!, 4);
  expect(await worker.reported((r) => r.accepted[0] === 8)).toMatchObject({ pauses: 1 });
  await Promise.all([connect(worker.ports[0]!, 2), connect(worker.ports[1]!, 2)]);
  expect((await worker.afterPending()).accepted).toEqual([8]);
  worker.endPause();
  expect((await worker.reported((r) => r.accepted[0] === 12)).accepted).toEqual([12]);
});
