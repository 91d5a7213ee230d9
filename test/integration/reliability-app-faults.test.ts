// Faults in the app: a thrown error or a rejected promise fails that request
// alone with a bare 500; process.exit() in a handler fails only the requests on
// that worker and the worker is replaced. A leak (max_worker_memory) and a
// blocking loop (timeout) are covered by lifecycle.test.ts: 'recycling' and 'timeout'.
import http from 'node:http';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { request } from '../helpers/http.js';
import { FIXTURES, serversStoppedAfterEach, workerPids } from '../helpers/tsgunicorn.js';
import { sleep, until } from '../helpers/wait.js';

const start = serversStoppedAfterEach();
const APP = path.join(FIXTURES, 'reliability/app.mjs');

/** One keep-alive connection: every request on it reaches the same worker. */
function connection(url: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = (p: string) => request(`${url}${p}`, { agent, headers: { connection: 'keep-alive' } });
  return { get, close: () => agent.destroy() };
}

describe('app faults', () => {
  for (const route of ['/throw', '/reject']) {
    it(`${route}: a bare 500 for that request only, the stack in the log, the same worker serves on`, async () => {
      const server = await start(['-w', '1', APP]);
      const [worker] = await workerPids(server.proc.pid!);
      const ok = await request(`${server.url}/pid`);
      const failed = await request(`${server.url}${route}`);
      expect(failed.status).toBe(500);
      expect(failed.body).toBe('Internal Server Error\n');
      for (const leak of ['Error:', 'at ', '.mjs', '/', 'boom']) expect(failed.body).not.toContain(leak);
      const after = await request(`${server.url}/pid`);
      expect([ok.body, after.body]).toEqual([String(worker), String(worker)]);
      await server.waitFor(new RegExp(`\\[ERROR\\] Error handling request GET ${route}`));
      // The stack, with the app's file, is in the server's log instead.
      expect(server.output()).toMatch(new RegExp(`Error: boom from ${route}\\n\\s+at app \\(file://[^)]*pid-app\\.mjs:\\d+:\\d+\\)`));
      expect(await workerPids(server.proc.pid!)).toEqual([worker]);
      expect(server.output()).not.toMatch(/exited|was sent/);
      console.log(`reliability: app fault ${route} injected 1, answered 500 with no stack, worker kept (pid ${worker}), 0 failures`);
    });
  }

  it('process.exit() in a handler fails only the requests on that worker; the worker is replaced', async () => {
    const server = await start(['-w', '2', APP]);
    const original = (await workerPids(server.proc.pid!)).sort();
    // Keep-alive connections until each worker holds at least three of them.
    const byWorker = new Map<string, Array<ReturnType<typeof connection>>>();
    const extra: Array<ReturnType<typeof connection>> = [];
    for (let i = 0; i < 200 && [...byWorker.values()].filter((c) => c.length >= 3).length < 2; i++) {
      const c = connection(server.url);
      const pid = (await c.get('/pid')).body;
      const list = byWorker.get(pid) ?? [];
      if (list.length < 3) {
        list.push(c);
        byWorker.set(pid, list);
      } else extra.push(c);
    }
    expect([...byWorker.keys()].sort()).toEqual(original.map(String));
    const inFlight = [...byWorker.entries()].flatMap(([pid, conns]) =>
      conns.map((c) =>
        c.get('/slowpid?ms=1500').then(
          (r) => ({ pid, outcome: r.status === 200 ? `200 from ${r.body}` : `status ${r.status}` }),
          (err: Error) => ({ pid, outcome: `failed: ${err.message}` }),
        ),
      ),
    );
    await sleep(300);
    const exitReply = await connection(server.url)
      .get('/exit')
      .catch((err: Error) => err);
    // The /exit request may land on either worker: the one it lands on dies.
    const dead = await until('a worker gone', async () => {
      const now = await workerPids(server.proc.pid!);
      const gone = original.filter((p) => !now.includes(p));
      return gone.length === 1 ? String(gone[0]) : undefined;
    });
    const results = await Promise.all(inFlight);
    const alive = [...byWorker.keys()].find((pid) => pid !== dead)!;
    expect(exitReply).toBeInstanceOf(Error);
    expect(results.filter((r) => r.pid === alive).map((r) => r.outcome)).toEqual([
      `200 from ${alive}`,
      `200 from ${alive}`,
      `200 from ${alive}`,
    ]);
    expect(results.filter((r) => r.pid === dead).every((r) => r.outcome.startsWith('failed'))).toBe(true);
    const replaced = await until('a replacement worker', async () => {
      const now = await workerPids(server.proc.pid!);
      return now.length === 2 && !now.includes(Number(dead)) ? now : undefined;
    });
    expect(replaced).toContain(Number(alive));
    expect(server.output()).toMatch(new RegExp(`Worker \\(pid:${dead}\\) exited with code 1`));
    for (let i = 0; i < 10; i++) expect((await request(`${server.url}/pid`)).status).toBe(200);
    for (const c of [...[...byWorker.values()].flat(), ...extra]) c.close();
    console.log(
      `reliability: process.exit() injected 1; in-flight requests failed 3 on the exiting worker, succeeded 3 on the other; worker replaced (2 workers), 0 failures`,
    );
  });
});
