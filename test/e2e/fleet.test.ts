// A fleet: HAProxy (packaging/examples/haproxy.cfg) in front of two hosts, each a
// booted container with the .deb installed, PROXY protocol v2 and health checks
// on /health. Under continuous load through HAProxy: reload host A, restart host
// B, stop A (drain_delay) and start it again, upgrade the .deb on B. No request
// may fail, and both hosts log the client's own address. Then the same HAProxy
// with `proto h2` in front of an h2c instance on each host: no request fails
// through a reload and a drained stop and start. Then the nginx example
// (packaging/examples/nginx.conf), checked with nginx -t, serves one request.
import { copyFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../helpers/ports.js';
import { v1 } from '../helpers/proxy-protocol.js';
import { rawExchange } from '../helpers/http.js';
import { startHaproxy, startNginx, type Haproxy } from './balancer.js';
import { diagnose, installExampleApp, journalEntries, start, EXAMPLE_GREETING } from './fixture.js';
import { boot, sleep, type Machine } from './harness.js';
import { load, type LoadResult } from '../helpers/http.js';

const unit = 'tsgunicorn@web.service';
// The load's source address: HAProxy connects to the hosts from 127.0.0.1, so
// only the PROXY header can tell them this one.
const CLIENT = '127.0.0.2';
const DRAIN_S = 3;

/** A host's instance; `access`: how HAProxy reaches it (the PROXY protocol, or h2c from a trusted peer). */
const hostConfig = (port: number, access = ['proxy_protocol = v2', 'proxy_allow_ips = 127.0.0.1']): string =>
  [
    `bind = 127.0.0.1:${port}`,
    'workers = 2',
    ...access,
    'health_check_path = /health',
    `drain_delay = ${DRAIN_S}`,
    'accesslog = -',
    '',
  ].join('\n');

describe('a fleet of two hosts behind HAProxy', () => {
  let hosts: { a: Machine; b: Machine } | undefined;
  let haproxy: Haproxy | undefined;
  let front = 0;
  const ports = { a: 0, b: 0 };

  beforeAll(async () => {
    const debError = inject('debError');
    if (debError) throw new Error(`dist/tsgunicorn.deb could not be built:\n${debError}`);
    const deb = inject('deb');
    // Distinct machine names; the containers share the host's network, so each host binds its own free port.
    const [a, b] = await Promise.all([boot('bookworm', { deb, name: 'tsg-fleet-a' }), boot('bookworm', { deb, name: 'tsg-fleet-b' })]);
    hosts = { a, b };
    [front, ports.a, ports.b] = [await freePort(), await freePort(), await freePort()];
    for (const [name, m] of Object.entries(hosts) as Array<['a' | 'b', Machine]>) {
      await installExampleApp(m, 'web');
      await m.writeFile('/etc/tsgunicorn/web.ini', hostConfig(ports[name]));
      // The generator makes tsgunicorn@web.socket listen where bind says.
      await m.run(['systemctl', 'daemon-reload']);
      await start(m, unit);
    }
    haproxy = await startHaproxy(front, [ports.a, ports.b]);
    await Promise.all([haproxy.waitStatus('host-a', 'UP', 30_000), haproxy.waitStatus('host-b', 'UP', 30_000)]);
  }, 300_000);

  afterAll(async () => {
    await haproxy?.stop();
    await Promise.all([hosts?.a.stop(), hosts?.b.stop()]);
  });

  /** Load through HAProxy (`through`, the fleet's by default) from before `action` until both hosts are back in and a second after. */
  async function underLoad(name: string, action: () => Promise<void>, through = { balancer: haproxy!, port: front }): Promise<LoadResult> {
    let running = true;
    const traffic = load({
      url: `http://127.0.0.1:${through.port}/`,
      clients: 8,
      durationMs: 150_000,
      total: 8 * 20_000,
      localAddress: CLIENT,
      while: () => running,
    });
    await sleep(1_000);
    await action();
    await Promise.all([through.balancer.waitStatus('host-a', 'UP', 60_000), through.balancer.waitStatus('host-b', 'UP', 60_000)]);
    await sleep(1_000);
    running = false;
    const result = await traffic;
    console.log(`fleet: ${name}: ${result.ok} requests ok, ${result.failed} failed ${JSON.stringify(result.reasons)}`);
    return result;
  }

  async function systemctl(m: Machine, ...args: string[]): Promise<void> {
    const r = await m.systemctl(...args);
    if (r.code !== 0) throw new Error(`systemctl ${args.join(' ')} exited ${r.code}: ${r.stderr}\n${await diagnose(m, unit)}`);
  }

  it('fails no request through reload, restart, a drained stop and start, and an upgrade', async () => {
    const { a, b } = hosts!;
    const upgradeError = inject('upgradeDebError');
    if (upgradeError) throw new Error(`the upgrade .deb could not be built:\n${upgradeError}`);
    const phases: Record<string, LoadResult> = {};
    phases['reload A'] = await underLoad('reload A', () => systemctl(a, 'reload', unit));
    phases['restart B'] = await underLoad('restart B', () => systemctl(b, 'restart', unit));
    phases['stop A (drain), start A'] = await underLoad('stop A (drain), start A', async () => {
      // The socket too: while systemd holds it, a connection (a health check) would start the service again.
      const stopping = systemctl(a, 'stop', 'tsgunicorn@web.socket', unit);
      // HAProxy takes A out on its 503s while A still serves, before A closes its socket.
      await haproxy!.waitStatus('host-a', 'DOWN', DRAIN_S * 1000 + 5_000);
      await stopping;
      await start(a, unit);
    });
    phases['upgrade B'] = await underLoad('upgrade B', async () => {
      copyFileSync(inject('upgradeDeb'), path.join(b.root, 'root/tsgunicorn-upgrade.deb'));
      const r = await b.exec(['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', '-y', 'install', '/root/tsgunicorn-upgrade.deb'], {
        timeoutMs: 180_000,
      });
      rmSync(path.join(b.root, 'root/tsgunicorn-upgrade.deb'));
      if (r.code !== 0) throw new Error(`upgrade failed: ${r.stdout}${r.stderr}`);
    });
    for (const [name, result] of Object.entries(phases)) {
      expect({ phase: name, failed: result.failed, reasons: result.reasons }).toEqual({ phase: name, failed: 0, reasons: {} });
      expect(result.ok, name).toBeGreaterThan(0);
      expect([...result.bodies.keys()], name).toEqual([EXAMPLE_GREETING]);
    }
    expect((await b.run(['tsgunicorn', '--version'])).trim()).toBe(inject('upgradeProgramVersion'));

    // Both hosts logged the client's address, never HAProxy's, for the load's requests.
    for (const m of [a, b]) {
      const served = (await journalEntries(m, unit, 'HTTP_PATH=/')).map((e) => e.REMOTE_ADDR);
      expect(served.length).toBeGreaterThan(0);
      expect(new Set(served)).toEqual(new Set([CLIENT]));
    }
  }, 600_000);

  it('fails no request through HAProxy over h2c (proto h2) through a reload and a drained stop and start', async () => {
    const { a, b } = hosts!;
    const h2Unit = 'tsgunicorn@h2c.service';
    const h2Ports = [await freePort(), await freePort()] as [number, number];
    for (const [m, port] of [
      [a, h2Ports[0]],
      [b, h2Ports[1]],
    ] as Array<[Machine, number]>) {
      await installExampleApp(m, 'h2c');
      // HAProxy reaches the hosts from 127.0.0.1: only a trusted peer is served HTTP/2.
      await m.writeFile(
        '/etc/tsgunicorn/h2c.ini',
        hostConfig(port, ['http2_cleartext = prior-knowledge', 'forwarded_allow_ips = 127.0.0.1']),
      );
      await m.run(['systemctl', 'daemon-reload']);
      await start(m, h2Unit);
    }
    const h2Front = await freePort();
    const h2Haproxy = await startHaproxy(h2Front, h2Ports, { h2c: true });
    try {
      await Promise.all([h2Haproxy.waitStatus('host-a', 'UP', 30_000), h2Haproxy.waitStatus('host-b', 'UP', 30_000)]);
      const through = { balancer: h2Haproxy, port: h2Front };
      const phases: Record<string, LoadResult> = {};
      phases['h2c: reload A'] = await underLoad('h2c: reload A', () => systemctl(a, 'reload', h2Unit), through);
      phases['h2c: stop A (drain), start A'] = await underLoad(
        'h2c: stop A (drain), start A',
        async () => {
          const stopping = systemctl(a, 'stop', 'tsgunicorn@h2c.socket', h2Unit);
          await h2Haproxy.waitStatus('host-a', 'DOWN', DRAIN_S * 1000 + 5_000);
          await stopping;
          await start(a, h2Unit);
        },
        through,
      );
      // HAProxy's log: requests it sent again (GOAWAY left them unprocessed), and any it failed.
      const lines = h2Haproxy.output().split('\n');
      const retried = lines.filter((l) => / \d+\/\d+\/\d+\/\d+\/\+?[1-9]\d* \d+\/\d+ "/.test(l));
      const failed = lines.filter((l) => / HTTP\/1\.1"$/.test(l) && !/ 200 /.test(l));
      console.log(`fleet: h2c: HAProxy retried ${retried.length} request(s)${failed.length ? `; failed:\n${failed.join('\n')}` : ''}`);
      for (const [name, result] of Object.entries(phases)) {
        expect({ phase: name, failed: result.failed, reasons: result.reasons }).toEqual({ phase: name, failed: 0, reasons: {} });
        expect(result.ok, name).toBeGreaterThan(0);
        expect([...result.bodies.keys()], name).toEqual([EXAMPLE_GREETING]);
      }
      // The load reached both hosts over HTTP/2, never HTTP/1.1.
      for (const m of [a, b]) {
        const protocols = (await journalEntries(m, h2Unit, 'HTTP_PATH=/')).map((e) => e.HTTP_PROTOCOL);
        expect(protocols.length).toBeGreaterThan(0);
        expect(new Set(protocols)).toEqual(new Set(['HTTP/2.0']));
      }
    } finally {
      await h2Haproxy.stop();
    }
  }, 300_000);

  it('the nginx example passes the address of a PROXY protocol balancer on in X-Forwarded-For', async () => {
    const { a } = hosts!;
    const port = await freePort();
    await a.writeFile(
      '/etc/tsgunicorn/plain.ini',
      `bind = 127.0.0.1:${port}\nworkers = 1\nforwarded_allow_ips = 127.0.0.1\naccesslog = -\n`,
    );
    await installExampleApp(a, 'plain');
    await a.run(['systemctl', 'daemon-reload']);
    await start(a, 'tsgunicorn@plain.service');
    const nginxPort = await freePort();
    const nginx = await startNginx(nginxPort, port);
    try {
      let reply = '';
      for (let i = 0; i < 50 && !reply.startsWith('HTTP/1.1 200'); i++) {
        // As a TCP balancer in front would send it.
        const request = Buffer.concat([
          v1('PROXY TCP4 203.0.113.50 127.0.0.1 50000 80'),
          Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
        ]);
        reply = await rawExchange(nginxPort, request, 1_000).catch(() => '');
        if (!reply.startsWith('HTTP/1.1 200')) await sleep(100);
      }
      expect(reply).toMatch(/^HTTP\/1\.1 200 /);
      expect(reply).toContain(EXAMPLE_GREETING);
      const logged = (await journalEntries(a, 'tsgunicorn@plain.service', 'HTTP_PATH=/')).map((e) => e.REMOTE_ADDR);
      expect(logged).toEqual(['203.0.113.50']);
    } finally {
      await nginx.stop();
    }
  }, 120_000);
});
