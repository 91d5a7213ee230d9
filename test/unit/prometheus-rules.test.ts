// The alerting rules shipped in packaging/prometheus, checked and unit-tested
// by promtool (Debian package `prometheus`), and held against what the
// master really exposes.
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { MetricsAggregator } from '../../src/metrics/aggregator.js';
import { createWorkerMetrics } from '../../src/metrics/worker-metrics.js';

const run = promisify(execFile);
const dir = fileURLToPath(new URL('../../packaging/prometheus/', import.meta.url));

async function exposition(): Promise<string> {
  const worker = createWorkerMetrics();
  worker.requestStarted();
  worker.requestFinished('GET', 200, 0.01);
  const aggregator = new MetricsAggregator();
  await aggregator.collect([{ pid: 1234, request: () => worker.snapshot() }]);
  return aggregator.render();
}

describe('packaging/prometheus rules', () => {
  it('pass promtool check rules', async () => {
    const { stdout } = await run('promtool', ['check', 'rules', 'tsgunicorn.rules.yml'], { cwd: dir });
    expect(stdout).toMatch(/SUCCESS: 6 rules found/);
  });

  it('fire and stay quiet as promtool test rules expects (CPU, memory, latency, errors, restarts, health)', async () => {
    const { stdout } = await run('promtool', ['test', 'rules', 'tsgunicorn.rules.test.yml'], { cwd: dir });
    expect(stdout).toMatch(/SUCCESS/);
  });

  it('use only metrics the master exposes, in an exposition promtool accepts', async () => {
    const text = await exposition();
    const exposed = new Set(
      [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap(([, name, type]) =>
        type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name!],
      ),
    );
    const rules = readFileSync(`${dir}tsgunicorn.rules.yml`, 'utf8');
    const used = new Set([...rules.matchAll(/\b(?:tsgunicorn|http)_[a-z_]+/g)].map(([name]) => name));
    expect(used.size).toBeGreaterThanOrEqual(7);
    expect([...used].filter((name) => !exposed.has(name))).toEqual([]);

    const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(lint.stdout + lint.stderr).toBe('');
    expect(lint.status).toBe(0);
  });
});
