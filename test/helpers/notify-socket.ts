// systemd's side of NOTIFY_SOCKET. Node cannot bind an AF_UNIX datagram socket,
// so a small Python process receives: one JSON line per datagram, with its own
// CLOCK_MONOTONIC reading (µs) at receipt.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';

const RECEIVER = `
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps({"data": data.decode(), "monoUsec": time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}), flush=True)
`;

export interface Datagram {
  data: string;
  monoUsec: number;
}

export interface NotifySocket {
  /** The value for NOTIFY_SOCKET. */
  path: string;
  /** The next datagram not yet taken, waiting for it if need be. */
  next(): Promise<Datagram>;
  /** Takes every datagram received and not yet taken. */
  drain(): Datagram[];
  close(): void;
}

export async function startNotifySocket(): Promise<NotifySocket> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tsgunicorn-notify-'));
  const socketPath = path.join(dir, 'notify.sock');
  const receiver = spawn('python3', ['-c', RECEIVER, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  const received: Datagram[] = [];
  const waiters: ((d: Datagram) => void)[] = [];
  const lines = createInterface({ input: receiver.stdout });
  await new Promise<void>((resolve, reject) => {
    receiver.once('error', reject);
    lines.on('line', (line) => {
      if (line === 'bound') return resolve();
      const datagram = JSON.parse(line) as Datagram;
      const waiter = waiters.shift();
      if (waiter) waiter(datagram);
      else received.push(datagram);
    });
  });
  return {
    path: socketPath,
    next: () => {
      const ready = received.shift();
      return ready ? Promise.resolve(ready) : new Promise((resolve) => waiters.push(resolve));
    },
    drain: () => received.splice(0),
    close: () => {
      receiver.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
