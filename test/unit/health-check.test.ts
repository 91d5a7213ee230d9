import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HealthCheck, type HealthSettings, type HealthTarget } from '../../src/health/health-check.js';

type Mode = 'ok' | 'fail' | 'hang';

/** An app whose /health answers 200, 503 or never, and that records each probe. */
class FakeApp {
  mode: Mode = 'ok';
  probes: Array<{ path: string; mode: Mode; atMs: number }> = [];
  open = 0;
  maxOpen = 0;
  readonly server: Server = createServer((req, res) => {
    this.probes.push({ path: req.url ?? '', mode: this.mode, atMs: performance.now() });
    this.maxOpen = Math.max(this.maxOpen, ++this.open);
    res.on('close', () => this.open--);
    if (this.mode === 'ok') res.end('ok');
    if (this.mode === 'fail') res.writeHead(503).end('down');
  });

  async listen(socketPath?: string): Promise<HealthTarget> {
    if (socketPath !== undefined) {
      this.server.listen(socketPath);
      await once(this.server, 'listening');
      return { socketPath };
    }
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return { host: '127.0.0.1', port: (this.server.address() as AddressInfo).port };
  }

  /** Resolves when `n` more probes have arrived. */
  async nextProbes(n: number): Promise<void> {
    const target = this.probes.length + n;
    while (this.probes.length < target) await once(this.server, 'request');
  }
}

const fast: HealthSettings = {
  health_check_path: '/health',
  health_check_initial_delay: 0,
  health_check_period: 0.05,
  health_check_timeout: 0.2,
  health_check_success_threshold: 1,
  health_check_failure_threshold: 3,
};

const apps: FakeApp[] = [];
const checks: HealthCheck[] = [];
afterEach(() => {
  for (const c of checks.splice(0)) c.stop();
  for (const a of apps.splice(0)) {
    a.server.close();
    a.server.closeAllConnections();
  }
});

async function setUp(overrides: Partial<HealthSettings> = {}, socketPath?: string) {
  const app = new FakeApp();
  apps.push(app);
  const target = await app.listen(socketPath);
  const warnings: string[] = [];
  const settings = { ...fast, ...overrides };
  const check = new HealthCheck(
    () => settings,
    () => target,
    { warn: (m) => warnings.push(m) },
  );
  checks.push(check);
  // Each change of state a probe made, with the reason when it turned unhealthy.
  const changes: string[] = [];
  let last = check.state;
  check.on('probe', () => {
    if (check.state === last) return;
    last = check.state;
    changes.push(check.state === 'unhealthy' ? `unhealthy: ${check.lastFailure}` : check.state);
  });
  return { app, check, changes, warnings, settings };
}

/** Resolves after the probe that turned the check `state`. */
async function until(check: HealthCheck, state: HealthCheck['state']): Promise<void> {
  while (check.state !== state) await once(check, 'probe');
}

describe('HealthCheck', () => {
  it('turns healthy on a 2xx, probing the configured path', async () => {
    const { app, check, changes } = await setUp();
    check.start();
    await app.nextProbes(2);
    expect(app.probes[0]?.path).toBe('/health');
    expect(check.state).toBe('healthy');
    expect(changes).toEqual(['healthy']);
  });

  it('turns unhealthy once, after failure_threshold consecutive failures', async () => {
    const { app, check, changes, warnings } = await setUp();
    check.start();
    await app.nextProbes(1);
    app.mode = 'fail';
    await until(check, 'unhealthy');
    expect(app.probes.filter((p) => p.mode === 'fail')).toHaveLength(3);
    expect(check.consecutiveFailures).toBe(3);
    expect(warnings.at(-1)).toMatch(/status 503/);
    await app.nextProbes(3); // still failing: no second change
    expect(changes).toEqual(['healthy', 'unhealthy: status 503']);
    expect(check.state).toBe('unhealthy');
  });

  it('turns healthy again once, after success_threshold consecutive successes', async () => {
    const { app, check, changes } = await setUp({ health_check_success_threshold: 2, health_check_failure_threshold: 1 });
    app.mode = 'fail';
    check.start();
    await until(check, 'unhealthy');
    const failed = app.probes.length;
    app.mode = 'ok';
    await until(check, 'healthy');
    expect(app.probes.slice(failed).map((p) => p.mode)).toEqual(['ok', 'ok']);
    await app.nextProbes(2);
    expect(changes).toEqual(['unhealthy: status 503', 'healthy']);
    expect(check.consecutiveFailures).toBe(0);
  });

  it('reads its settings at every probe: a reload changes the path and thresholds from the next one', async () => {
    const { app, check, settings } = await setUp({ health_check_failure_threshold: 100 });
    check.start();
    await app.nextProbes(1);
    app.mode = 'fail';
    await app.nextProbes(1);
    Object.assign(settings, { health_check_path: '/ready', health_check_failure_threshold: 3 });
    await until(check, 'unhealthy');
    expect(app.probes.at(-1)?.path).toBe('/ready');
    expect(check.consecutiveFailures).toBe(3);
  });

  it('counts a probe without an answer within the timeout as a failure, and never overlaps probes', async () => {
    const { app, check, changes } = await setUp({ health_check_timeout: 0.1, health_check_failure_threshold: 2 });
    app.mode = 'hang';
    check.start();
    await until(check, 'unhealthy');
    expect(changes).toEqual(['unhealthy: no answer within 100 ms']);
    expect(app.probes).toHaveLength(2);
    expect(app.maxOpen).toBe(1);
  });

  it('waits the initial delay before the first probe', async () => {
    const { app, check } = await setUp({ health_check_initial_delay: 0.3 });
    const started = performance.now();
    check.start();
    await app.nextProbes(1);
    expect(app.probes[0]!.atMs - started).toBeGreaterThanOrEqual(290);
  });

  it('probes through a unix socket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsgunicorn-health-'));
    try {
      const { app, check } = await setUp({}, join(dir, 'app.sock'));
      check.start();
      await app.nextProbes(1);
      await app.nextProbes(1);
      expect(check.state).toBe('healthy');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops probing on stop(), and never starts without a path', async () => {
    const { app, check } = await setUp();
    check.start();
    await app.nextProbes(1);
    check.stop();
    const off = new HealthCheck(
      () => ({ ...fast, health_check_path: null }),
      () => ({ host: '127.0.0.1', port: 1 }),
      { warn: () => {} },
    );
    off.start();
    const seen = app.probes.length;
    await new Promise((resolve) => setTimeout(resolve, 300)); // six periods
    expect(app.probes.length).toBe(seen);
    expect(off.state).toBe('unknown');
  });
});
