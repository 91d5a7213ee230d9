// The servers the bench compares. Each serves the same hello world on
// 127.0.0.1 and start() resolves once it answers 200, with the time that took.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { spawnGroup, stopGroup, trackGroup, trackUnit, untrackUnit, waitForHttp200 } from './processes.mjs';

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
const JOURNALD_SOCKET = '/run/systemd/journal/socket';
// The packaged unit's journald rate limit, for the transient service to log as an instance does.
const UNIT_LOG_RATE_LIMIT = readFileSync(join(ROOT, 'systemd/tsgunicorn@.service'), 'utf8')
  .split('\n')
  .filter((line) => line.startsWith('LogRateLimit'));
// sd_booted(3): systemd is PID 1 when this directory exists.
const SYSTEMD_RUNTIME = '/run/systemd/system';

/**
 * @typedef {{ port: number, countDir: string, tmpDir: string, tls: { cert: string, key: string }, gunicorn?: string }} StartContext
 * @typedef {{ url: string, readyMs: number, masterPid: number, stop: () => Promise<void>, output: () => string }} Running
 * @typedef {{ id: string, label: string, workers: number, unavailable?: string, start: (ctx: StartContext) => Promise<Running> }} ServerSpec
 */

/** Starts a server that is one process group led by the master, and waits for its first 200. */
async function startGroup(command, args, { ctx, env = {}, cwd, tls = false }) {
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${ctx.port}/`;
  const startedAt = performance.now();
  const group = spawnGroup(command, args, {
    cwd,
    env: { ...process.env, PORT: String(ctx.port), BENCH_COUNT_DIR: ctx.countDir, ...env },
  });
  const stop = () => stopGroup(group.pid);
  try {
    const readyMs = await waitForHttp200(url, { startedAt, exited: group.exited });
    return { url, readyMs, masterPid: group.pid, stop, output: group.output };
  } catch (err) {
    await stop();
    throw new Error(`${err.message}\n--- server output ---\n${group.output()}`);
  }
}

export function tsgunicorn(extraArgs, app, { workers = '2', tls = false } = {}) {
  return (ctx) =>
    startGroup(
      process.execPath,
      [...TSGUNICORN_NODE_OPTIONS, TSGUNICORN, '-w', workers, '-b', `127.0.0.1:${ctx.port}`, ...extraArgs(ctx), join(APPS, app)],
      { ctx, tls },
    );
}

function nodeCluster(sched) {
  return (ctx) =>
    startGroup(process.execPath, [join(APPS, 'cluster-server.mjs')], {
      ctx,
      env: { BENCH_SCHED: sched, BENCH_WORKERS: '2' },
    });
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
 * tsgunicorn -w 2 with `--access-logfile -` in a transient service
 * (systemd-run), whose stderr is the journal stream (systemd.exec(5)
 * JOURNAL_STREAM), so access lines go to journald natively. Journald's rate
 * limit is off for the unit so every line is stored: the full cost.
 */
async function startInJournalService(ctx) {
  const url = `http://127.0.0.1:${ctx.port}/`;
  const unit = `tsgunicorn-bench-${process.pid}-${ctx.port}.service`;
  const stop = async () => {
    await run('systemctl', ['stop', unit], { timeout: 20000 }).catch(() => {});
    untrackUnit(unit);
  };
  const startedAt = performance.now();
  try {
    trackUnit(unit);
    await run('systemd-run', [
      `--unit=${unit}`,
      '--collect',
      '--quiet',
      ...UNIT_LOG_RATE_LIMIT.map((line) => `--property=${line}`),
      `--setenv=BENCH_COUNT_DIR=${ctx.countDir}`,
      process.execPath,
      ...TSGUNICORN_NODE_OPTIONS,
      TSGUNICORN,
      '-w',
      '2',
      '-b',
      `127.0.0.1:${ctx.port}`,
      '--access-logfile',
      '-',
      join(APPS, 'hello-listener.mjs'),
    ]);
    const readyMs = await waitForHttp200(url, { startedAt });
    const { stdout } = await run('systemctl', ['show', '--property=MainPID', '--value', unit]);
    return { url, readyMs, masterPid: Number(stdout.trim()), stop, output: () => `see journalctl -u ${unit}` };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** @returns {ServerSpec[]} in the order they run; node:cluster SCHED_NONE (the baseline) first. */
export function benchServers({ gunicorn, gunicornMissing }) {
  const noJournald = !existsSync(JOURNALD_SOCKET)
    ? 'n/a (no journald)'
    : !existsSync(SYSTEMD_RUNTIME)
      ? 'n/a (journald but no systemd to run a service under)'
      : process.getuid?.() !== 0
        ? 'n/a (systemd-run of a system service needs root)'
        : undefined;
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
    { id: 'tsg-express', label: 'tsgunicorn -w 2, Express app exported', workers: 2, start: tsgunicorn(() => [], 'express-app.mjs') },
    {
      id: 'tsg-express-script',
      label: 'tsgunicorn -w 2, Express app as a server script',
      workers: 2,
      start: tsgunicorn(() => [], 'express-server.mjs'),
    },
    {
      id: 'tsg-logfile',
      label: 'tsgunicorn -w 2, access log to file',
      workers: 2,
      start: tsgunicorn((ctx) => ['--access-logfile', join(ctx.tmpDir, `access-${ctx.port}.log`)], 'hello-listener.mjs'),
    },
    {
      id: 'tsg-logfile-json',
      label: 'tsgunicorn -w 2, JSON access log to file',
      workers: 2,
      start: tsgunicorn(
        (ctx) => ['--access-log-json', '--access-logfile', join(ctx.tmpDir, `access-json-${ctx.port}.log`)],
        'hello-listener.mjs',
      ),
    },
    {
      id: 'tsg-journal',
      label: 'tsgunicorn -w 2, access log to journal',
      workers: 2,
      unavailable: noJournald,
      start: startInJournalService,
    },
    {
      id: 'tsg-tls',
      label: 'tsgunicorn -w 2, TLS (ECDSA P-256)',
      workers: 2,
      start: tsgunicorn((ctx) => ['--certfile', ctx.tls.cert, '--keyfile', ctx.tls.key], 'hello-listener.mjs', { tls: true }),
    },
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
