// Issue 22, items 1 to 3: an APM agent sees every request under tsgunicorn as
// under `node server.js` (the real OpenTelemetry SDK with its http and Express
// instrumentations, side by side with plain node), the `preload` setting and
// NODE_OPTIONS load it, and the access log joins the agent's traces.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { request } from '../helpers/http.js';
import { freePort, isListening } from '../helpers/ports.js';
import { cleanEnv, FIXTURES, runCli, serversStoppedAfterEach } from '../helpers/tsgunicorn.js';
import { until } from '../helpers/wait.js';

const APM = path.join(FIXTURES, 'apm');
const TRACING = path.join(APM, 'tracing.cjs');
const REQUESTS = 10;
const SERVER_KIND = 1; // SpanKind.SERVER

const start = serversStoppedAfterEach();
const dir = mkdtempSync(path.join(tmpdir(), 'tsgunicorn-apm-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const spansFile = () => path.join(dir, `spans-${++files}.jsonl`);

interface Span {
  pid: number;
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  attributes: Record<string, unknown>;
}
// Complete lines only: a worker may be writing the next span as the file is read.
const serverSpans = (file: string): Span[] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .slice(0, -1)
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Span)
        .filter((s) => s.kind === SERVER_KIND)
    : [];

// Plain `node server.js`, the reference: started as a user would, ready once its port accepts.
const plainNodes: ChildProcess[] = [];
afterEach(async () => {
  await Promise.all(
    plainNodes.splice(0).map(async (proc) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGKILL');
      await once(proc, 'exit');
    }),
  );
});
async function plainNode(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const port = await freePort();
  const proc = spawn(process.execPath, args, { cwd: APM, env: { ...cleanEnv(), ...env, PORT: String(port) }, stdio: 'inherit' });
  plainNodes.push(proc);
  await until(`plain node ${args.join(' ')} listening`, () => proc.exitCode === null && isListening(port), 20_000);
  return `http://127.0.0.1:${port}`;
}

/** A valid traceparent of its own for request i, as a calling service sends it. */
const traceparent = (i: number) => `00-${(i + 1).toString(16).padStart(32, 'a')}-${'b'.repeat(15)}${i.toString(16)}-01`;

/** Sends the requests, then waits for their SERVER spans: at least one each, since an extra one must count too. */
async function traced(url: string, file: string): Promise<void> {
  for (let i = 0; i < REQUESTS; i++) {
    const reply = await request(`${url}/users/${i}`, { headers: { traceparent: traceparent(i) } });
    expect(reply.status).toBe(200);
  }
  await until(`${REQUESTS} SERVER spans in ${file}`, () => serverSpans(file).length >= REQUESTS, 30_000);
}

interface Shape {
  name: string;
  file: string;
  /** http.route the SERVER span carries: Express's route; a fetch app has no router the agent knows. */
  route: string | undefined;
}
const SHAPES: Shape[] = [
  { name: 'a server script (Express app.listen)', file: 'express-script.cjs', route: '/users/:id' },
  { name: 'an exported Express app', file: 'express-app.cjs', route: '/users/:id' },
  { name: 'an exported fetch app', file: 'fetch-app.cjs', route: undefined },
  // No Koa or Fastify instrumentation is loaded: the span has no route, under node as here.
  { name: 'an exported Koa app', file: 'koa-app.cjs', route: undefined },
  { name: 'an exported Fastify instance (started with its listen())', file: 'fastify-app.cjs', route: undefined },
];
const LOADS = [
  { name: 'required by the app', env: { TRACE_IN_APP: '1' }, node: [] as string[], tsgunicorn: [] as string[] },
  { name: 'loaded through preload', env: {}, node: ['--require', TRACING], tsgunicorn: ['--preload', './tracing.cjs'] },
];

describe.each(SHAPES)('OpenTelemetry sees $name', (shape) => {
  it.each(LOADS)('once per request, as under plain node, with the agent $name', async (load) => {
    const nodeSpans = spansFile();
    const nodeUrl = await plainNode([...load.node, shape.file], { ...load.env, SPANS_FILE: nodeSpans });
    await traced(nodeUrl, nodeSpans);

    const ours = spansFile();
    const server = await start(['-w', '2', '--access-logfile', '-', '--access-log-json', ...load.tsgunicorn, shape.file], {
      cwd: APM,
      env: { ...load.env, SPANS_FILE: ours },
    });
    await traced(server.url, ours);
    await server.stop();

    const reference = serverSpans(nodeSpans);
    const spans = serverSpans(ours);
    expect(reference).toHaveLength(REQUESTS);
    expect(spans).toHaveLength(REQUESTS);
    expect(spans.map((s) => s.attributes['http.route'])).toEqual(reference.map((s) => s.attributes['http.route']));
    expect(new Set(spans.map((s) => s.attributes['http.route']))).toEqual(new Set([shape.route]));
    // Each span continues its caller's trace, under tsgunicorn as under node.
    expect(spans.map((s) => s.traceId).sort()).toEqual(reference.map((s) => s.traceId).sort());
    expect(new Set(spans.map((s) => s.traceId)).size).toBe(REQUESTS);

    // The access log names the agent's SERVER span of each request (not the caller's, traceparent's parent-id).
    const logged = server
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { path: string; trace_id: string; span_id: string });
    expect(logged).toHaveLength(REQUESTS);
    expect(logged.map((l) => `${l.trace_id} ${l.span_id}`).sort()).toEqual(spans.map((s) => `${s.traceId} ${s.spanId}`).sort());
  });
});

describe('an agent that wraps http.Server.prototype.emit after the server exists', () => {
  it.each([
    ['a server script', { AS_SCRIPT: '1' }],
    ['an exported listener', {}],
  ])('sees each later request once in %s, as under plain node', async (_, env) => {
    const seenAfterWrapping = async (url: string) => {
      await request(`${url}/wrap`);
      for (let i = 0; i < 5; i++) await request(`${url}/after`);
      return (await request(`${url}/seen`)).body;
    };
    const reference = await seenAfterWrapping(await plainNode(['late-agent.cjs'], {}));
    expect(reference).toBe('6');
    const server = await start(['-w', '1', 'late-agent.cjs'], { cwd: APM, env });
    expect(await seenAfterWrapping(server.url)).toBe(reference);
  });
});

describe('preload', () => {
  it('loads CommonJS and ES modules (top-level await included) in order, before the app is imported', async () => {
    const server = await start(['--preload', './order-cjs.cjs', '--preload', './order-esm.mjs', 'order-app.cjs'], { cwd: APM });
    expect((await request(server.url)).body).toBe('["cjs","esm"]');
  });

  it("looks a module up from the working directory, then from the app module's directory (a package name too)", async () => {
    // From the repository root: ./order-cjs.cjs is beside the app only; @opentelemetry/... is in the node_modules above it.
    const server = await start(['--preload', './order-cjs.cjs,@opentelemetry/api', path.join(APM, 'order-app.cjs')]);
    expect((await request(server.url)).body).toBe('["cjs"]');
  });

  it('that cannot be found stops the start with one line and exit 2, before any worker', async () => {
    const { code, stderr } = await runCli(['--preload', './no-such-agent.js', 'order-app.cjs'], { cwd: APM });
    expect(code).toBe(2);
    expect(stderr).toMatch(
      /^tsgunicorn: error: command line --preload: preload \.\/no-such-agent\.js: cannot be found from \S+apm \(MODULE_NOT_FOUND\)/,
    );
    expect(stderr).not.toMatch(/Booting worker/);
  });

  it("that throws ends the boot with the module's own error and exit 4", async () => {
    const { code, stderr } = await runCli(['-b', '127.0.0.1:0', '--preload', './throws.cjs', 'order-app.cjs'], { cwd: APM });
    expect(code).toBe(4);
    expect(stderr).toMatch(/preload \.\/throws\.cjs \(.*throws\.cjs\) failed to load: Error: agent misconfigured: no service name/);
    expect(stderr).toMatch(/throws\.cjs:2/);
  });

  it.each(['--require', '-r'])('is not a place for node flags (%s)', async (flag) => {
    const { code, stderr } = await runCli([`--preload=${flag} ./tracing.cjs`, 'order-app.cjs'], { cwd: APM });
    expect(code).toBe(2);
    expect(stderr).toContain(`option --preload: preload: expected a module, got "${flag} ./tracing.cjs"`);
  });
});

describe('NODE_OPTIONS', () => {
  it('reaches the workers: --require and --import load there before the app, as under plain node', async () => {
    const spans = spansFile();
    const nodeOptions = `--require ${TRACING} --import ${path.join(APM, 'order-esm.mjs')}`;
    const server = await start(['-w', '2', 'express-script.cjs'], { cwd: APM, env: { NODE_OPTIONS: nodeOptions, SPANS_FILE: spans } });
    await traced(server.url, spans);
    await server.stop();
    expect(serverSpans(spans).filter((s) => s.attributes['http.route'] === '/users/:id')).toHaveLength(REQUESTS);

    const order = await start(['order-app.cjs'], { cwd: APM, env: { NODE_OPTIONS: `--import ${path.join(APM, 'order-esm.mjs')}` } });
    expect((await request(order.url)).body).toBe('["esm"]');
  });

  it('set with raw_env (-e) reaches the workers only', async () => {
    const server = await start(['-e', `NODE_OPTIONS=--import ${path.join(APM, 'order-esm.mjs')}`, 'order-app.cjs'], { cwd: APM });
    expect((await request(server.url)).body).toBe('["esm"]');
  });
});
