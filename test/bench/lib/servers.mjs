// The servers the bench compares. Each serves the same hello world on
// 127.0.0.1 and start() resolves once it answers 200, with the time that took.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { spawnGroup, stopGroup, trackGroup, waitForHttp200 } from './processes.mjs';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const APPS = fileURLToPath(new URL('../apps/', import.meta.url));
const TSGUNICORN = join(ROOT, 'bin/tsgunicorn.js');
// The node options of the CLI's #! line, as the installed wrapper passes them.
const TSGUNICORN_NODE_OPTIONS = readFileSync(TSGUNICORN, 'utf8')
  .split('\n')[0]
  .replace(/^#!.*[/ ]node\b/, '')
  .split(' ')
  .filter(Boolean);
const PM2 = join(createRequire(import.meta.url).resolve('pm2/package.json'), '../bin/pm2');

/**
 * @typedef {{ port: number, countDir: string, tmpDir: string, tls: { cert: string, key: string }, gunicorn?: string, cpu?: number }} StartContext
 * @typedef {{ url: string, readyMs: number, masterPid: number, stop: () => Promise<void>, output: () => string }} Running
 * @typedef {{ id: string, label: string, workers: number, unavailable?: string, start: (ctx: StartContext) => Promise<Running> }} ServerSpec
 */

/** Starts a server that is one process group led by the master, and waits for its first 200. */
async function startGroup(command, args, { ctx, env = {}, cwd, tls = false, proxyV2 = false, http2 = false }) {
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${ctx.port}/`;
  const startedAt = performance.now();
  // Pinned, the server and every process it forks run on that CPU only (affinity is inherited).
  const pinned = ctx.cpu === undefined ? [command, ...args] : ['taskset', '-c', String(ctx.cpu), command, ...args];
  const group = spawnGroup(pinned[0], pinned.slice(1), {
    cwd,
    env: { ...process.env, PORT: String(ctx.port), BENCH_COUNT_DIR: ctx.countDir, ...env },
  });
  const stop = () => stopGroup(group.pid);
  try {
    const readyMs = await waitForHttp200(url, { startedAt, exited: group.exited, proxyV2, http2 });
    return { url, readyMs, masterPid: group.pid, stop, output: group.output };
  } catch (err) {
    await stop();
    throw new Error(`${err.message}\n--- server output ---\n${group.output()}`);
  }
}

export function tsgunicorn(extraArgs, app, { workers = '2', tls = false, proxyV2 = false, http2 = false } = {}) {
  return (ctx) =>
    startGroup(
      process.execPath,
      [...TSGUNICORN_NODE_OPTIONS, TSGUNICORN, '-w', workers, '-b', `127.0.0.1:${ctx.port}`, ...extraArgs(ctx), join(APPS, app)],
      { ctx, tls, proxyV2, http2 },
    );
}

/**
 * Bare node:cluster with this many workers; http2: 'h2c' or 'h2' serves node:http2 instead of node:http.
 * @param {string} sched @param {{ workers?: number, http2?: 'h2c' | 'h2' }} [options]
 */
function nodeCluster(sched, { workers = 2, http2 } = {}) {
  return (ctx) =>
    startGroup(process.execPath, [join(APPS, 'cluster-server.mjs')], {
      ctx,
      env: {
        BENCH_SCHED: sched,
        BENCH_WORKERS: String(workers),
        ...(http2 && { BENCH_HTTP2: http2, BENCH_CERT: ctx.tls.cert, BENCH_KEY: ctx.tls.key }),
      },
      tls: http2 === 'h2',
      http2: Boolean(http2),
    });
}

// tsgunicorn's HTTP/2 arguments: h2c with prior knowledge from 127.0.0.1, a trusted peer; h2 and HTTP/1.1 by ALPN.
const H2C_ARGS = () => ['--http2-cleartext', 'prior-knowledge', '--forwarded-allow-ips', '127.0.0.1'];
const H2_ARGS = (ctx) => ['--certfile', ctx.tls.cert, '--keyfile', ctx.tls.key, '--http-protocols', 'h2,h1'];

/**
 * The HTTP/2 throughput pairs (driven by h2load): per protocol, bare node:http2 under node:cluster (SCHED_NONE)
 * and tsgunicorn -w 2 serving the same app. h2c: prior knowledge from 127.0.0.1, a trusted peer.
 * @returns {Array<{ protocol: 'h2c' | 'h2', bare: ServerSpec, tsg: ServerSpec }>}
 */
export function http2Servers() {
  return [
    {
      protocol: 'h2c',
      bare: {
        id: 'cluster-h2c',
        label: 'node:http2 under node:cluster SCHED_NONE, h2c',
        workers: 2,
        start: nodeCluster('none', { http2: 'h2c' }),
      },
      tsg: { id: 'tsg-h2c', label: 'tsgunicorn -w 2, h2c', workers: 2, start: tsgunicorn(H2C_ARGS, 'hello-listener.mjs', { http2: true }) },
    },
    {
      protocol: 'h2',
      bare: {
        id: 'cluster-h2',
        label: 'node:http2 under node:cluster SCHED_NONE, h2 (TLS)',
        workers: 2,
        start: nodeCluster('none', { http2: 'h2' }),
      },
      tsg: {
        id: 'tsg-h2',
        label: 'tsgunicorn -w 2, h2 (TLS)',
        workers: 2,
        start: tsgunicorn(H2_ARGS, 'hello-listener.mjs', { tls: true, http2: true }),
      },
    },
  ];
}

/** PM2 cluster mode, 2 instances, under a private PM2_HOME; stop() runs `pm2 kill`. */
async function startPm2(ctx) {
  const url = `http://127.0.0.1:${ctx.port}/`;
  const home = join(ctx.tmpDir, `pm2-home-${ctx.port}`);
  mkdirSync(home, { recursive: true });
  const env = { ...process.env, PM2_HOME: home, PORT: String(ctx.port), BENCH_COUNT_DIR: ctx.countDir };
  const pm2 = (...args) => run(process.execPath, [PM2, ...args], { env, timeout: 30000 });
  let daemonPid;
  const stop = async () => {
    await pm2('kill').catch(() => {});
    // pm2 kill should leave nothing behind; the group kill makes sure of it.
    if (daemonPid) await stopGroup(daemonPid, 1000);
  };
  const startedAt = performance.now();
  try {
    await pm2('start', join(APPS, 'single-server.mjs'), '-i', '2', '--name', 'bench-hello');
    daemonPid = Number(readFileSync(join(home, 'pm2.pid'), 'utf8'));
    trackGroup(daemonPid);
    const readyMs = await waitForHttp200(url, { startedAt });
    return { url, readyMs, masterPid: daemonPid, stop, output: () => '' };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * The memory pair with one worker each, so that every request of the light load reaches the worker measured
 * (ids as their two-worker rows, so BENCH_ONLY selects them alike).
 * @returns {ServerSpec[]}
 */
export function oneWorkerServers() {
  return [
    { id: 'cluster-none', label: 'node:cluster SCHED_NONE, 1 worker', workers: 1, start: nodeCluster('none', { workers: 1 }) },
    { id: 'tsg', label: 'tsgunicorn -w 1', workers: 1, start: tsgunicorn(() => [], 'hello-listener.mjs', { workers: '1' }) },
  ];
}

/** @returns {ServerSpec[]} in the order they run; node:cluster SCHED_NONE (the baseline) first. */
export function benchServers({ gunicorn, gunicornMissing }) {
  return [
    { id: 'cluster-none', label: 'node:cluster SCHED_NONE', workers: 2, start: nodeCluster('none') },
    { id: 'tsg', label: 'tsgunicorn -w 2', workers: 2, start: tsgunicorn(() => [], 'hello-listener.mjs') },
    {
      id: 'tsg-auto',
      label: 'tsgunicorn -w auto',
      workers: availableParallelism(),
      start: tsgunicorn(() => [], 'hello-listener.mjs', { workers: 'auto' }),
    },
    { id: 'tsg-fetch', label: 'tsgunicorn -w 2, fetch handler', workers: 2, start: tsgunicorn(() => [], 'hello-fetch.mjs') },
    { id: 'cluster-rr', label: 'node:cluster round-robin', workers: 2, start: nodeCluster('rr') },
    {
      id: 'single',
      label: 'node:http, one process',
      workers: 1,
      start: (ctx) => startGroup(process.execPath, [join(APPS, 'single-server.mjs')], { ctx }),
    },
    { id: 'pm2', label: 'PM2 cluster, 2 instances', workers: 2, start: startPm2 },
    {
      id: 'gunicorn',
      label: 'Gunicorn + Flask, 3 sync workers',
      workers: 3,
      unavailable: gunicornMissing,
      start: (ctx) => startGroup(gunicorn, ['-w', '3', '-b', `127.0.0.1:${ctx.port}`, 'app:app'], { ctx, cwd: APPS }),
    },
  ];
}

/** A bare node process serving `script` (from apps/), with these environment variables. */
function bareNode(script, env = () => ({})) {
  return (ctx) =>
    startGroup(process.execPath, [join(APPS, script)], {
      ctx,
      env: env(ctx),
      tls: Boolean(env(ctx).BENCH_CERT) && env(ctx).BENCH_HTTP2 !== 'h2c',
      http2: Boolean(env(ctx).BENCH_HTTP2),
    });
}

/**
 * The servers of the CPU-per-request table, one process serving each (tsgunicorn -w 1), in groups started
 * together and measured in alternating rounds. proxyV2: the load starts each connection with a PROXY v2 header;
 * h2load: the load is h2load's (HTTP/2) instead of wrk's, in one mode. The HTTP/2 rows share their tsgunicorn ids
 * with the HTTP/2 throughput pairs, so BENCH_ONLY=tsg-h2c,bare-h2c runs both for h2c.
 * @returns {Array<Array<{ id: string, label: string, start: (ctx: StartContext) => Promise<Running>, proxyV2?: boolean, h2load?: boolean }>>}
 */
export function cpuServerGroups() {
  const one = (extraArgs, app, options) => tsgunicorn(extraArgs, app, { workers: '1', ...options });
  return [
    [
      { id: 'bare', label: 'node:http (bare), hello world', start: bareNode('single-server.mjs') },
      { id: 'tsg', label: 'tsgunicorn -w 1, defaults', start: one(() => [], 'hello-listener.mjs') },
      {
        id: 'tsg-logfile',
        label: 'tsgunicorn -w 1, access log to a file',
        start: one((ctx) => ['--access-logfile', join(ctx.tmpDir, `cpu-access-${ctx.port}.log`)], 'hello-listener.mjs'),
      },
      {
        id: 'tsg-logfile-json',
        label: 'tsgunicorn -w 1, JSON access log to a file',
        start: one(
          (ctx) => ['--access-log-json', '--access-logfile', join(ctx.tmpDir, `cpu-access-${ctx.port}.json`)],
          'hello-listener.mjs',
        ),
      },
      {
        id: 'tsg-proxy-v2',
        label: 'tsgunicorn -w 1, proxy_protocol v2',
        proxyV2: true,
        start: one(() => ['--proxy-protocol', 'v2'], 'hello-listener.mjs', { proxyV2: true }),
      },
    ],
    [
      { id: 'tsg-express', label: 'tsgunicorn -w 1, Express app exported', start: one(() => [], 'express-app.mjs') },
      { id: 'tsg-express-script', label: 'tsgunicorn -w 1, Express app as a server script', start: one(() => [], 'express-server.mjs') },
    ],
    [
      { id: 'bare-otel', label: 'node (bare), Express app with OpenTelemetry', start: bareNode('otel-server.cjs') },
      { id: 'tsg-otel', label: 'tsgunicorn -w 1, Express app with OpenTelemetry', start: one(() => [], 'otel-app.cjs') },
    ],
    [
      {
        id: 'bare-tls',
        label: 'node:https (bare), ECDSA P-256',
        start: bareNode('single-server.mjs', (ctx) => ({ BENCH_CERT: ctx.tls.cert, BENCH_KEY: ctx.tls.key })),
      },
      {
        id: 'tsg-tls',
        label: 'tsgunicorn -w 1, TLS (ECDSA P-256)',
        start: one((ctx) => ['--certfile', ctx.tls.cert, '--keyfile', ctx.tls.key], 'hello-listener.mjs', { tls: true }),
      },
    ],
    [
      {
        id: 'bare-h2c',
        label: 'node:http2 (bare), h2c',
        h2load: true,
        start: bareNode('single-server.mjs', () => ({ BENCH_HTTP2: 'h2c' })),
      },
      { id: 'tsg-h2c', label: 'tsgunicorn -w 1, h2c', h2load: true, start: one(H2C_ARGS, 'hello-listener.mjs', { http2: true }) },
      {
        id: 'bare-h2',
        label: 'node:http2 (bare), h2 (TLS, ECDSA P-256)',
        h2load: true,
        start: bareNode('single-server.mjs', (ctx) => ({ BENCH_HTTP2: 'h2', BENCH_CERT: ctx.tls.cert, BENCH_KEY: ctx.tls.key })),
      },
      {
        id: 'tsg-h2',
        label: 'tsgunicorn -w 1, h2 (TLS, ECDSA P-256)',
        h2load: true,
        start: one(H2_ARGS, 'hello-listener.mjs', { tls: true, http2: true }),
      },
    ],
  ];
}
