// The README's raw_env example, as written there, in an ini: every worker boots
// with both of Node's options (space-separated in NODE_OPTIONS) and the second variable.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { request } from '../helpers/http.js';
import { ROOT, startServer, type Running } from '../helpers/tsgunicorn.js';

let server: Running | undefined;
afterAll(async () => server?.stop());

it("the README's raw_env NODE_OPTIONS example boots the workers with both options", async () => {
  const example = /`(raw_env = NODE_OPTIONS=[^`]+)`/.exec(readFileSync(path.join(ROOT, 'README.md'), 'utf8'))?.[1];
  expect(example).toBeDefined();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-raw-env-'));
  writeFileSync(
    path.join(dir, 'app.mjs'),
    `import v8 from 'node:v8';
export const app = (req, res) => res.end(JSON.stringify({
  sourceMaps: process.sourceMapsEnabled,
  heapLimitMb: Math.round(v8.getHeapStatistics().heap_size_limit / 1048576),
  greeting: process.env.GREETING,
}));
`,
  );
  writeFileSync(path.join(dir, 'app.ini'), `app = ${path.join(dir, 'app.mjs')}\nworkers = 2\n${example}\n`);
  server = await startServer(['-c', path.join(dir, 'app.ini'), '-b', '127.0.0.1:0']);
  const seen = JSON.parse((await request(`${server.url}/`)).body) as { sourceMaps: boolean; heapLimitMb: number; greeting: string };
  expect(seen.sourceMaps).toBe(true);
  // --max-old-space-size=256 bounds the old space; the limit adds the young generation (Node 24: about 450 MB in all).
  expect(seen.heapLimitMb).toBeGreaterThanOrEqual(256);
  expect(seen.heapLimitMb).toBeLessThan(600);
  expect(seen.greeting).toBe('hi');
});
