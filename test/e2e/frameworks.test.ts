// A framework app as its guide writes it, through the installed package: Express's
// "Hello world example" (expressjs.com), ending in app.listen(port), deployed to
// /srv/myapp with its node_modules as `npm install --omit=dev` lays them out, and
// served by tsgunicorn@myapp under the unit's sandbox, as the service user, with no ini.
import { cpSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { request } from '../helpers/http.js';
import { ROOT } from '../helpers/tsgunicorn.js';
import { diagnose, listeningPorts, property, start, unitPids, useMachine } from './fixture.js';
import { SUITES, waitFor } from './harness.js';

const unit = 'tsgunicorn@myapp.service';

const EXPRESS_HELLO = `const express = require('express')
const app = express()
const port = process.env.PORT || 3000

app.get('/', (req, res) => {
  res.send('Hello World!')
})

app.listen(port, () => {
  console.log(\`Example app listening on port \${port}\`)
})
`;

/** The production dependencies of `name`, as npm hoists them into this project's node_modules. */
function dependencyClosure(name: string): string[] {
  const found = new Set<string>();
  const visit = (dep: string): void => {
    const dir = path.join(ROOT, 'node_modules', dep);
    // Not hoisted: it lives in its dependent's own node_modules, copied with it.
    if (found.has(dep) || !existsSync(dir)) return;
    found.add(dep);
    const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    for (const next of Object.keys(manifest.dependencies ?? {})) visit(next);
  };
  visit(name);
  return [...found];
}

describe.each(SUITES)('%s: a framework app', (suite) => {
  const machine = useMachine(suite);

  it("serves Express's hello world example from /srv/myapp unmodified, on the socket unit's address only", async () => {
    const m = machine();
    const app = path.join(m.root, 'srv/myapp');
    for (const dep of dependencyClosure('express')) {
      cpSync(path.join(ROOT, 'node_modules', dep), path.join(app, 'node_modules', dep), { recursive: true });
    }
    await m.writeFile('/srv/myapp/package.json', '{"name": "myapp", "main": "index.js", "dependencies": {"express": "^5"}}\n');
    await m.writeFile('/srv/myapp/index.js', EXPRESS_HELLO);
    await start(m, unit);

    expect(await request('http://127.0.0.1:8000/')).toMatchObject({ status: 200, body: 'Hello World!' });
    // The port it asked for is never bound: tsgunicorn serves it on the socket unit's.
    const ports = await listeningPorts(m, unit);
    if (ports.join() !== '8000') throw new Error(`ports of ${unit}: ${ports.join(', ')}\n${await diagnose(m, unit)}`);
    // Its own log line reaches the journal from every worker, with PORT set to where it is served.
    const master = Number(await property(m, unit, 'MainPID'));
    const workers = (await unitPids(m, unit)).filter((pid) => pid !== master);
    expect(workers.length).toBeGreaterThan(1);
    await waitFor(
      async () => {
        const lines = (await m.journal(unit, '-o', 'cat')).stdout.split('\n');
        return lines.filter((l) => l === 'Example app listening on port 8000').length >= workers.length || undefined;
      },
      10_000,
      () => `no "Example app listening on port 8000" from each of ${workers.length} workers`,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose(m, unit)}`);
    });
  });
});
