import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createNotifier, systemdChildEnv } from '../../src/systemd/notify.js';

// Node cannot bind an AF_UNIX datagram socket, so a small Python process plays
// systemd's side of NOTIFY_SOCKET: one JSON line per datagram, with its own
// CLOCK_MONOTONIC reading (µs) at receipt.
const RECEIVER = `
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps({"data": data.decode(), "monoUsec": time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}), flush=True)
`;

interface Datagram {
  data: string;
  monoUsec: number;
}

let dir: string;
let socketPath: string;
let receiver: ChildProcess;
const received: Datagram[] = [];
const waiters: ((d: Datagram) => void)[] = [];

function nextDatagram(): Promise<Datagram> {
  const ready = received.shift();
  return ready ? Promise.resolve(ready) : new Promise((resolve) => waiters.push(resolve));
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'tsgunicorn-notify-'));
  socketPath = path.join(dir, 'notify.sock');
  receiver = spawn('python3', ['-c', RECEIVER, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: receiver.stdout! });
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
});

afterAll(() => {
  receiver.kill();
  rmSync(dir, { recursive: true, force: true });
});

afterEach(() => {
  delete process.env.NOTIFY_SOCKET;
  expect(received).toEqual([]);
});

function liveNotifier() {
  // libsystemd reads NOTIFY_SOCKET from the real process environment.
  process.env.NOTIFY_SOCKET = socketPath;
  const notifier = createNotifier(process.env);
  expect(notifier.enabled).toBe(true);
  return notifier;
}

describe('createNotifier against a NOTIFY_SOCKET', () => {
  it('sends READY=1', async () => {
    liveNotifier().ready();
    expect((await nextDatagram()).data).toBe('READY=1');
  });

  it('sends STOPPING=1', async () => {
    liveNotifier().stopping();
    expect((await nextDatagram()).data).toBe('STOPPING=1');
  });

  it('sends WATCHDOG=1', async () => {
    liveNotifier().watchdog();
    expect((await nextDatagram()).data).toBe('WATCHDOG=1');
  });

  it('sends STATUS= as one line, newlines folded', async () => {
    liveNotifier().status('4 workers\nMAINPID=1\r\nbooting');
    expect((await nextDatagram()).data).toBe('STATUS=4 workers MAINPID=1 booting');
  });

  it('sends RELOADING=1 with MONOTONIC_USEC from CLOCK_MONOTONIC in one datagram', async () => {
    liveNotifier().reloading();
    const { data, monoUsec } = await nextDatagram();
    const match = /^RELOADING=1\nMONOTONIC_USEC=([0-9]+)$/.exec(data);
    expect(match).not.toBeNull();
    // The receiver read CLOCK_MONOTONIC after the datagram was sent: the sent
    // value is earlier, and (same clock) not by more than the delivery time.
    const lagUsec = monoUsec - Number(match![1]);
    expect(lagUsec).toBeGreaterThanOrEqual(0);
    expect(lagUsec).toBeLessThan(5_000_000);
  });

  it('sends nothing and says why when NOTIFY_SOCKET is not in its env', async () => {
    process.env.NOTIFY_SOCKET = socketPath;
    const messages: string[] = [];
    const { NOTIFY_SOCKET: _omit, ...env } = process.env;
    const disabled = createNotifier(env, process.pid, (m) => messages.push(m));
    expect(disabled.enabled).toBe(false);
    expect(disabled.watchdogIntervalMs).toBe(0);
    disabled.ready();
    disabled.reloading();
    disabled.status('x');
    disabled.watchdog();
    disabled.stopping();
    expect(messages).toEqual(['NOTIFY_SOCKET not set: no systemd notifications']);
    // The socket was reachable all along: the first datagram that arrives is the live one's.
    liveNotifier().status('marker');
    expect((await nextDatagram()).data).toBe('STATUS=marker');
  });
});

describe('watchdogIntervalMs (sd_watchdog_enabled)', () => {
  const PID = 4242;
  const interval = (env: NodeJS.ProcessEnv) => createNotifier({ NOTIFY_SOCKET: socketPath, ...env }, PID).watchdogIntervalMs;

  it('is half of WATCHDOG_USEC, in ms', () => {
    expect(interval({ WATCHDOG_USEC: '3000000' })).toBe(1500);
  });

  it('applies when WATCHDOG_PID is this process', () => {
    expect(interval({ WATCHDOG_USEC: '10000000', WATCHDOG_PID: String(PID) })).toBe(5000);
  });

  it('is 0 when WATCHDOG_PID is another process', () => {
    expect(interval({ WATCHDOG_USEC: '10000000', WATCHDOG_PID: String(PID + 1) })).toBe(0);
  });

  it('is 0 when WATCHDOG_USEC is unset, zero or garbage', () => {
    expect(interval({})).toBe(0);
    expect(interval({ WATCHDOG_USEC: '0' })).toBe(0);
    expect(interval({ WATCHDOG_USEC: '-5' })).toBe(0);
    expect(interval({ WATCHDOG_USEC: '3s' })).toBe(0);
    expect(interval({ WATCHDOG_USEC: '3000000', WATCHDOG_PID: 'me' })).toBe(0);
  });

  it('is 0 without NOTIFY_SOCKET, where WATCHDOG=1 could not be sent', () => {
    expect(createNotifier({ WATCHDOG_USEC: '3000000' }, PID).watchdogIntervalMs).toBe(0);
  });
});

describe('systemdChildEnv', () => {
  it('returns a copy without the master-only systemd variables', () => {
    const env: NodeJS.ProcessEnv = {
      NOTIFY_SOCKET: '/run/systemd/notify',
      WATCHDOG_USEC: '1000000',
      WATCHDOG_PID: '1',
      LISTEN_PID: '1',
      LISTEN_FDS: '1',
      LISTEN_FDNAMES: 'http',
      JOURNAL_STREAM: '8:1234',
      PATH: '/usr/bin',
    };
    const before = { ...env };
    expect(systemdChildEnv(env)).toEqual({ JOURNAL_STREAM: '8:1234', PATH: '/usr/bin' });
    expect(env).toEqual(before);
  });
});
