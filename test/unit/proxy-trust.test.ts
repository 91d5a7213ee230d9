import type { IncomingMessage, ServerResponse } from 'node:http';
import { expect, it } from 'vitest';
import { createProxyTrust } from '../../src/worker/proxy-trust.js';

const req = (peer: string, headers: Record<string, string>, url = '/p') =>
  ({ socket: { remoteAddress: peer }, headers, url }) as unknown as IncomingMessage;

it('believes X-Forwarded-For only from trusted peers, walking back over trusted hops', () => {
  const trust = createProxyTrust(['127.0.0.1', '10.0.0.2']);
  expect(trust.clientAddress(req('::ffff:127.0.0.1', { 'x-forwarded-for': '203.0.113.9' }))).toBe('203.0.113.9');
  expect(trust.clientAddress(req('127.0.0.1', { 'x-forwarded-for': '6.6.6.6, 203.0.113.9, 10.0.0.2' }))).toBe('203.0.113.9');
  expect(trust.clientAddress(req('198.51.100.1', { 'x-forwarded-for': '203.0.113.9' }))).toBe('198.51.100.1');
  expect(createProxyTrust(['*']).clientAddress(req('198.51.100.1', { 'x-forwarded-for': '203.0.113.9' }))).toBe('203.0.113.9');
});

it("gives a fetch app's adapter the https URL only for a trusted X-Forwarded-Proto, and leaves req.url as sent", () => {
  const trust = createProxyTrust(['127.0.0.1']);
  const seen: string[] = [];
  const adapter = trust.forFetchApp((request) => void seen.push(request.url!));
  const trusted = req('127.0.0.1', { 'x-forwarded-proto': 'https', host: 'example.org' }, '/p?q=1');
  adapter(trusted, {} as ServerResponse);
  const untrusted = req('198.51.100.1', { 'x-forwarded-proto': 'https', host: 'example.org' }, '/p?q=1');
  adapter(untrusted, {} as ServerResponse);
  expect(seen).toEqual(['https://example.org/p?q=1', '/p?q=1']);
  expect([trusted.url, untrusted.url]).toEqual(['/p?q=1', '/p?q=1']);
});

it('trusts proxies by CIDR range, IPv4 and IPv6', () => {
  const trust = createProxyTrust(['10.0.0.0/8', 'fd00::/8']);
  expect(trust.clientAddress(req('10.255.255.255', { 'x-forwarded-for': '203.0.113.9' }))).toBe('203.0.113.9');
  expect(trust.clientAddress(req('fd12::1', { 'x-forwarded-for': '203.0.113.9, 10.1.1.1' }))).toBe('203.0.113.9');
  expect(trust.clientAddress(req('11.0.0.0', { 'x-forwarded-for': '203.0.113.9' }))).toBe('11.0.0.0');
  expect(trust.clientAddress(req('fe00::1', { 'x-forwarded-for': '203.0.113.9' }))).toBe('fe00::1');
});
