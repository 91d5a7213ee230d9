import { describe, expect, it } from 'vitest';
import { takeListenFds } from '../../src/systemd/listen-fds.js';

const PID = 4242;

describe('takeListenFds (sd_listen_fds semantics)', () => {
  it('returns the fds from 3 on when LISTEN_PID is this process', () => {
    const env = { LISTEN_PID: String(PID), LISTEN_FDS: '2', LISTEN_FDNAMES: 'http:metrics' };
    expect(takeListenFds(env, PID)).toEqual([
      { fd: 3, name: 'http' },
      { fd: 4, name: 'metrics' },
    ]);
  });

  it('names every fd "unknown" when LISTEN_FDNAMES is absent', () => {
    expect(takeListenFds({ LISTEN_PID: String(PID), LISTEN_FDS: '3' }, PID)).toEqual([
      { fd: 3, name: 'unknown' },
      { fd: 4, name: 'unknown' },
      { fd: 5, name: 'unknown' },
    ]);
  });

  it('returns none when LISTEN_PID belongs to another process', () => {
    expect(takeListenFds({ LISTEN_PID: String(PID + 1), LISTEN_FDS: '1' }, PID)).toEqual([]);
  });

  it('returns none when LISTEN_PID is missing', () => {
    expect(takeListenFds({ LISTEN_FDS: '1', LISTEN_FDNAMES: 'http' }, PID)).toEqual([]);
  });

  it('returns none when LISTEN_FDS is missing or zero', () => {
    expect(takeListenFds({ LISTEN_PID: String(PID) }, PID)).toEqual([]);
    expect(takeListenFds({ LISTEN_PID: String(PID), LISTEN_FDS: '0' }, PID)).toEqual([]);
  });

  it.each([
    ['LISTEN_PID', { LISTEN_PID: `${PID}x`, LISTEN_FDS: '1' }],
    ['LISTEN_PID', { LISTEN_PID: '', LISTEN_FDS: '1' }],
    ['LISTEN_FDS', { LISTEN_PID: String(PID), LISTEN_FDS: '-1' }],
    ['LISTEN_FDS', { LISTEN_PID: String(PID), LISTEN_FDS: 'two' }],
    ['LISTEN_FDS', { LISTEN_PID: String(PID), LISTEN_FDS: '1.5' }],
    ['LISTEN_FDS', { LISTEN_PID: String(PID), LISTEN_FDS: '99999999999' }],
    ['LISTEN_FDNAMES', { LISTEN_PID: String(PID), LISTEN_FDS: '2', LISTEN_FDNAMES: 'only-one' }],
    ['LISTEN_FDNAMES', { LISTEN_PID: String(PID), LISTEN_FDS: '1', LISTEN_FDNAMES: 'a:b' }],
  ])('returns none, without throwing, for a garbage %s', (_name, env) => {
    expect(takeListenFds(env, PID)).toEqual([]);
  });

  it('unsets LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES whether or not they applied, and nothing else', () => {
    const mine: NodeJS.ProcessEnv = {
      LISTEN_PID: String(PID),
      LISTEN_FDS: '1',
      LISTEN_FDNAMES: 'http',
      LISTEN_ADDR: 'keep',
      HOME: '/home/app',
    };
    const other: NodeJS.ProcessEnv = { LISTEN_PID: String(PID + 1), LISTEN_FDS: '1', LISTEN_FDNAMES: 'http' };
    const garbage: NodeJS.ProcessEnv = { LISTEN_PID: 'x', LISTEN_FDS: 'y', LISTEN_FDNAMES: 'z' };
    takeListenFds(mine, PID);
    takeListenFds(other, PID);
    takeListenFds(garbage, PID);
    expect(mine).toEqual({ LISTEN_ADDR: 'keep', HOME: '/home/app' });
    expect(other).toEqual({});
    expect(garbage).toEqual({});
  });

  it('defaults to process.env and process.pid, and unsets the real environment', () => {
    process.env.LISTEN_PID = String(process.pid);
    process.env.LISTEN_FDS = '1';
    process.env.LISTEN_FDNAMES = 'web';
    expect(takeListenFds()).toEqual([{ fd: 3, name: 'web' }]);
    expect(process.env.LISTEN_PID).toBeUndefined();
    expect(process.env.LISTEN_FDS).toBeUndefined();
    expect(process.env.LISTEN_FDNAMES).toBeUndefined();
  });
});
