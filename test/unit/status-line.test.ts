import { describe, expect, it } from 'vitest';
import { formatStatusLine } from '../../src/status-line.js';

describe('formatStatusLine', () => {
  it('summarises workers, traffic, latency and health on one line', () => {
    expect(formatStatusLine({ ready: 3, total: 3, requests: 1240, ratePerSec: 12.4, p99Ms: 8.04, meanMs: 2.6, health: 'healthy' })).toBe(
      '3/3 workers ready · 1,240 requests · 12 req/s · p99 8 ms · mean 2.6 ms · healthy',
    );
  });

  it('leaves out latency it does not know and a health check that is off', () => {
    expect(formatStatusLine({ ready: 0, total: 1, requests: 1, ratePerSec: 0.25, health: 'off' })).toBe(
      '0/1 worker ready · 1 request · 0.3 req/s',
    );
  });

  it('says when health is unknown or unhealthy', () => {
    const base = { ready: 2, total: 4, requests: 0, ratePerSec: 0 };
    expect(formatStatusLine({ ...base, health: 'unknown' })).toBe('2/4 workers ready · 0 requests · 0 req/s · health unknown');
    expect(formatStatusLine({ ...base, health: 'unhealthy', p99Ms: 1234.5 })).toBe(
      '2/4 workers ready · 0 requests · 0 req/s · p99 1,235 ms · unhealthy',
    );
  });

  it('says when a graceful stop is draining', () => {
    expect(formatStatusLine({ ready: 2, total: 2, requests: 5, ratePerSec: 1, health: 'off', draining: true })).toBe(
      '2/2 workers ready · 5 requests · 1 req/s · draining',
    );
  });

  it('groups thousands with commas', () => {
    const line = (requests: number): string =>
      formatStatusLine({ ready: 1, total: 1, requests, ratePerSec: 0, health: 'off' }).split(' · ')[1]!;
    expect([999, 1000, 65536, 1234567, 1000000].map(line)).toEqual([
      '999 requests',
      '1,000 requests',
      '65,536 requests',
      '1,234,567 requests',
      '1,000,000 requests',
    ]);
  });

  it('never spans more than one line (systemd STATUS=)', () => {
    expect(formatStatusLine({ ready: 1, total: 1, requests: 5, ratePerSec: 1, health: 'healthy' })).not.toMatch(/\n/);
  });

  it('after a failed reload, says so first, with the time, the reason and the generation still serving', () => {
    const reloadFailure = { at: '14:02:07', reason: 'the app failed to load: SyntaxError: Unexpected token', generation: 3 };
    expect(formatStatusLine({ ready: 2, total: 2, requests: 5, ratePerSec: 1, health: 'off', reloadFailure })).toBe(
      'reload failed at 14:02:07: the app failed to load: SyntaxError: Unexpected token; serving generation 3 · 2/2 workers ready · 5 requests · 1 req/s',
    );
  });
});
