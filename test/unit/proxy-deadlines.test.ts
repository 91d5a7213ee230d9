import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { DeadlineQueue } from '../../src/proxy-protocol/deadlines.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
});
afterEach(() => {
  vi.useRealTimers();
});

it('runs each deadline its duration after it was added, in order, and not the cancelled ones', () => {
  const queue = new DeadlineQueue(1000);
  const expired: string[] = [];
  queue.add(() => expired.push('a'));
  vi.advanceTimersByTime(300);
  const b = queue.add(() => expired.push('b'));
  vi.advanceTimersByTime(300);
  queue.add(() => expired.push('c'));
  b.cancel();
  b.cancel();
  vi.advanceTimersByTime(399);
  expect(expired).toEqual([]);
  vi.advanceTimersByTime(1);
  expect(expired).toEqual(['a']);
  vi.advanceTimersByTime(599);
  expect(expired).toEqual(['a']);
  vi.advanceTimersByTime(1);
  expect(expired).toEqual(['a', 'c']);
  // Empty, it holds no timer; a new deadline arms one again.
  expect(vi.getTimerCount()).toBe(0);
  queue.add(() => expired.push('d'));
  vi.advanceTimersByTime(1000);
  expect(expired).toEqual(['a', 'c', 'd']);
});

it('keeps one timer for any number of connections', () => {
  const queue = new DeadlineQueue(20_000);
  const deadlines = Array.from({ length: 100 }, () => queue.add(() => {}));
  expect(vi.getTimerCount()).toBe(1);
  for (const deadline of deadlines) deadline.cancel();
  expect(vi.getTimerCount()).toBe(1);
});

it('cancelling the head lets the next deadline run at its own time', () => {
  const queue = new DeadlineQueue(1000);
  const expired: string[] = [];
  const a = queue.add(() => expired.push('a'));
  vi.advanceTimersByTime(500);
  queue.add(() => expired.push('b'));
  a.cancel();
  vi.advanceTimersByTime(500);
  expect(expired).toEqual([]);
  vi.advanceTimersByTime(499);
  expect(expired).toEqual([]);
  vi.advanceTimersByTime(1);
  expect(expired).toEqual(['b']);
});
