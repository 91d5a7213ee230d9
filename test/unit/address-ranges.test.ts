import { expect, it } from 'vitest';
import { addressRange, createAddressMatcher } from '../../src/settings/address-ranges.js';

it('matches IPv4 CIDR ranges up to and not beyond their edges', () => {
  const inRange = createAddressMatcher(['10.0.0.0/8', '192.168.1.128/25', '198.51.100.7/32']);
  expect(inRange('10.0.0.0')).toBe(true);
  expect(inRange('10.255.255.255')).toBe(true);
  expect(inRange('9.255.255.255')).toBe(false);
  expect(inRange('11.0.0.0')).toBe(false);
  expect(inRange('192.168.1.128')).toBe(true);
  expect(inRange('192.168.1.255')).toBe(true);
  expect(inRange('192.168.1.127')).toBe(false);
  expect(inRange('198.51.100.7')).toBe(true);
  expect(inRange('198.51.100.8')).toBe(false);
  // An IPv4 client of a dual-stack socket.
  expect(inRange('::ffff:10.1.2.3')).toBe(true);
  expect(inRange('::ffff:11.1.2.3')).toBe(false);
});

it('matches IPv6 CIDR ranges up to and not beyond their edges', () => {
  const inRange = createAddressMatcher(['fd00::/8', '2001:db8:1::/48', '2001:db8:ffff::1/128']);
  expect(inRange('fd00::')).toBe(true);
  expect(inRange('fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')).toBe(true);
  expect(inRange('fc00::1')).toBe(false);
  expect(inRange('fe00::')).toBe(false);
  expect(inRange('2001:db8:1:ffff::1')).toBe(true);
  expect(inRange('2001:db8:2::')).toBe(false);
  expect(inRange('2001:db8:0:ffff:ffff:ffff:ffff:ffff')).toBe(false);
  expect(inRange('2001:db8:ffff::1')).toBe(true);
  expect(inRange('2001:db8:ffff::2')).toBe(false);
  // Families do not mix: an IPv4 address is not in an IPv6 range.
  expect(inRange('10.0.0.1')).toBe(false);
});

it('keeps exact addresses, the whole-space ranges and * apart', () => {
  const exact = createAddressMatcher(['127.0.0.1', '::1']);
  expect(exact('127.0.0.1')).toBe(true);
  expect(exact('::ffff:127.0.0.1')).toBe(true);
  expect(exact('::1')).toBe(true);
  expect(exact('127.0.0.2')).toBe(false);
  const allV4 = createAddressMatcher(['0.0.0.0/0']);
  expect(allV4('255.255.255.255')).toBe(true);
  expect(allV4('::2')).toBe(false);
  const allV6 = createAddressMatcher(['::/0']);
  expect(allV6('ffff::')).toBe(true);
  // An IPv4 peer is ::ffff:a.b.c.d to an IPv6 range, so ::/0 holds it too.
  expect(allV6('1.2.3.4')).toBe(true);
  expect(createAddressMatcher(['*'])('2001:db8::5')).toBe(true);
  expect(createAddressMatcher([])('127.0.0.1')).toBe(false);
});

it('accepts addresses, ranges and * as settings and names the form of anything else', () => {
  for (const ok of ['*', '10.0.0.0/8', 'fd00::/8', '0.0.0.0/0', '::/0', '192.0.2.1/32', '::1/128', '127.0.0.1', '::1']) {
    expect(addressRange.parse(ok)).toBe(ok);
  }
  for (const bad of ['10.0.0.0/33', 'fd00::/129', '10.0.0.0/', '10.0.0.0/08', '10.0.0/8', 'example.org', '10.0.0.0/8/8', '/8']) {
    expect(() => addressRange.parse(bad), bad).toThrow(/CIDR range/);
  }
});
