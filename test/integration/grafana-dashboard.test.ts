// The shipped Grafana dashboard (packaging/grafana/tsgunicorn.json), against a
// real Prometheus (the server from Debian's prometheus package, started here on
// loopback with its own config and storage) scraping a live tsgunicorn under
// load: every panel's query and every variable's query returns data, and the
// shipped alerting rules load and evaluate.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { load, request, type LoadResult } from '../helpers/http.js';
import { freePort } from '../helpers/ports.js';
import { HELLO_APP, ROOT, startServer, workerPids, type Running } from '../helpers/tsgunicorn.js';
import { until } from '../helpers/wait.js';

interface Panel {
  title: string;
  targets: { expr: string }[];
}
const dashboard = JSON.parse(readFileSync(path.join(ROOT, 'packaging/grafana/tsgunicorn.json'), 'utf8')) as {
  panels: Panel[];
  templating: { list: { name: string; type: string; query: string | { query: string } }[] };
};
const RULES = path.join(ROOT, 'packaging/prometheus/tsgunicorn.rules.yml');
// What Grafana substitutes: every job and instance, and a rate window of 4 scrape intervals.
const grafana = (expr: string): string => expr.replaceAll('$job', '.*').replaceAll('$instance', '.*').replaceAll('$__rate_interval', '4s');

let dir: string;
let server: Running;
let prometheus: ChildProcess;
let promUrl: string;
let promOutput = '';
let loading = true;
let traffic: Promise<LoadResult>;

async function api<T>(query: string): Promise<T> {
  const reply = await request(`${promUrl}/api/v1/${query}`);
  const body = JSON.parse(reply.body) as { status: string; data: T; error?: string };
  if (body.status !== 'success') throw new Error(`${query}: ${body.error ?? reply.body}`);
  return body.data;
}

const instant = (expr: string) =>
  api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(`query?query=${encodeURIComponent(expr)}`);

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'tsgunicorn-grafana-'));
  const metricsPort = await freePort();
  const app = path.join(dir, 'app.ts');
  copyFileSync(HELLO_APP, app);
  server = await startServer(['-w', '2', '--metrics-bind', `127.0.0.1:${metricsPort}`, app]);
  traffic = load({ url: `${server.url}/`, clients: 3, durationMs: 170_000, pauseMs: 2, while: () => loading });
  // A reload that fails and a worker replaced, so those panels show events, not only zeros.
  writeFileSync(app, `${readFileSync(HELLO_APP, 'utf8')}\nimport './missing-module.js';\n`);
  server.signal('SIGHUP');
  await server.waitFor(/Reload failed/, 30_000);
  copyFileSync(HELLO_APP, app);
  const [victim] = await workerPids(server.proc.pid!);
  process.kill(victim!, 'SIGKILL');
  const promPort = await freePort();
  promUrl = `http://127.0.0.1:${promPort}`;
  writeFileSync(
    path.join(dir, 'prometheus.yml'),
    `global: { scrape_interval: 1s, evaluation_interval: 1s }
rule_files: [${JSON.stringify(RULES)}]
scrape_configs:
  - job_name: tsgunicorn
    static_configs: [{ targets: ['127.0.0.1:${metricsPort}'] }]
`,
  );
  prometheus = spawn(
    'prometheus',
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  prometheus.stdout!.on('data', (d: Buffer) => (promOutput += d.toString()));
  prometheus.stderr!.on('data', (d: Buffer) => (promOutput += d.toString()));
  await until('Prometheus ready', async () => (await request(`${promUrl}/-/ready`).catch(() => null))?.status === 200, 60_000).catch(
    (err: Error) => {
      throw new Error(`${err.message}\n${promOutput.slice(-3000)}`);
    },
  );
}, 90_000);

afterAll(async () => {
  loading = false;
  await traffic;
  prometheus?.kill('SIGTERM');
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('the Grafana dashboard against Prometheus scraping tsgunicorn under load', () => {
  it('covers the panels an operator needs', () => {
    expect(dashboard.panels.map((p) => p.title)).toEqual([
      'Request rate',
      'Latency quantiles',
      'Responses by status code',
      'Requests in flight',
      'Workers by state',
      'Worker restarts by reason',
      'Resident memory per worker',
      'CPU per worker',
      'Reloads by result',
      'Event-loop lag per worker',
    ]);
  });

  it('every panel query returns data', async () => {
    const queries = dashboard.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, expr: grafana(t.expr) })));
    let empty: string[] = [];
    await until(
      'every panel query returns data',
      async () => {
        empty = [];
        for (const q of queries) {
          const { result } = await instant(q.expr);
          if (result.length === 0 || result.some((r) => !Number.isFinite(Number(r.value[1])))) empty.push(`${q.panel}: ${q.expr}`);
        }
        return empty.length === 0;
      },
      60_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; still empty:\n${empty.join('\n')}\n${server.output().slice(-2000)}`);
    });
    // The replaced worker is counted under its reason, the failed reload under its result.
    const counts = async (expr: string, label: string) =>
      Object.fromEntries((await instant(grafana(expr))).result.map((r) => [r.metric[label], Number(r.value[1])]));
    expect(await counts('sum by (reason) (tsgunicorn_worker_restarts_total{job=~"$job"})', 'reason')).toMatchObject({ crash: 1 });
    expect(await counts('sum by (result) (tsgunicorn_reloads_total{job=~"$job"})', 'result')).toEqual({ success: 0, failure: 1 });
  }, 90_000);

  it('the variables list the scraped job and instance', async () => {
    const job = await api<string[]>(`label/job/values?${new URLSearchParams({ 'match[]': 'tsgunicorn_workers' })}`);
    expect(job).toEqual(['tsgunicorn']);
    const instances = await api<string[]>(`label/instance/values?${new URLSearchParams({ 'match[]': 'tsgunicorn_workers{job=~".*"}' })}`);
    expect(instances).toHaveLength(1);
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'job', 'instance']);
  });

  it('the shipped alerting rules load and evaluate', async () => {
    let rules: { name: string; health: string; lastError?: string }[] = [];
    await until(
      'every rule evaluated',
      async () => {
        const { groups } = await api<{ groups: { rules: typeof rules }[] }>('rules');
        rules = groups.flatMap((g) => g.rules);
        return rules.length > 0 && rules.every((r) => r.health === 'ok');
      },
      30_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(rules)}\n${promOutput.slice(-2000)}`);
    });
    expect(rules.map((r) => r.name)).toEqual([
      'TsgunicornWorkerCpuHigh',
      'TsgunicornWorkerMemoryHigh',
      'TsgunicornResponseTimeHigh',
      'TsgunicornErrorRateHigh',
      'TsgunicornRestartStorm',
      'TsgunicornUnhealthy',
    ]);
  });
});
