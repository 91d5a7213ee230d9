import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createNotifier, systemdChildEnv } from '../../src/systemd/notify.js';
import { startNotifySocket, type NotifySocket } from '../helpers/notify-socket.js';

let notify: NotifySocket;

beforeAll(async () => {
  notify = await startNotifySocket();
});

afterAll(() => notify.close());

afterEach(() => {
  delete process.env.NOTIFY_SOCKET;
  expect(notify.drain()).toEqual([]);
});

function liveNotifier() {
  // libsystemd reads NOTIFY_SOCKET from the real process environment.
  process.env.NOTIFY_SOCKET = notify.path;
  const notifier = createNotifier(process.env);
  expect(notifier.enabled).toBe(true);
  return notifier;
}

describe('createNotifier against a NOTIFY_SOCKET', () => {
  it('sends READY=1', async () => {
    liveNotifier().ready();
    expect((await notify.next()).data).toBe('READY=1');
  });

  it('sends STOPPING=1', async () => {
    liveNotifier().stopping();
    expect((await notify.next()).data).toBe('STOPPING=1');
  });

  it('sends WATCHDOG=1', async () => {
    liveNotifier().watchdog();
    expect((await notify.next()).data).toBe('WATCHDOG=1');
  });

  it('sends STATUS= as one line, newlines folded', async () => {
    liveNotifier().status('4 workers\nMAINPID=1\r\nbooting');
    expect((await notify.next()).data).toBe('STATUS=4 workers MAINPID=1 booting');
  });

  it('sends RELOADING=1 with MONOTONIC_USEC from CLOCK_MONOTONIC in one datagram', async () => {
    liveNotifier().reloading();
    const { data, monoUsec } = await notify.next();
    const match = /^RELOADING=1\nMONOTONIC_USEC=([0-9]+)$/.exec(data);
    expect(match).not.toBeNull();
    // The receiver read CLOCK_MONOTONIC after the datagram was sent: the sent
    // value is earlier, and (same clock) not by more than the delivery time.
    const lagUsec = monoUsec - Number(match![1]);
    expect(lagUsec).toBeGreaterThanOrEqual(0);
    expect(lagUsec).toBeLessThan(5_000_000);
  });

  it('sends nothing and says why when NOTIFY_SOCKET is not in its env', async () => {
    process.env.NOTIFY_SOCKET = notify.path;
    const messages: string[] = [];
    const env = { ...process.env };
    delete env.NOTIFY_SOCKET;
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
    expect((await notify.next()).data).toBe('STATUS=marker');
  });
});

describe('watchdogIntervalMs (sd_watchdog_enabled)', () => {
  const PID = 4242;
  const interval = (env: NodeJS.ProcessEnv) => createNotifier({ NOTIFY_SOCKET: notify.path, ...env }, PID).watchdogIntervalMs;

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
