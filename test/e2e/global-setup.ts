// Once per e2e run: check the machine can boot containers, build the cached
// rootfs of each suite, and build dist/tsgunicorn.deb when it is missing or
// older than what goes into it (E2E_DEB=PATH tests a .deb built
// elsewhere instead). The upgrade test also needs a newer build of the same
// tree, dist/e2e-upgrade/tsgunicorn.deb, kept up to date the same way. A .deb
// that cannot be built fails only the tests that install it, with the build's output.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { checkPrerequisites, ensureRootfs, runHost, SUITES, tail } from './harness.js';

const repo = path.resolve(import.meta.dirname, '../..');
const deb = path.join(repo, 'dist/tsgunicorn.deb');
const upgradeDir = path.join(repo, 'dist/e2e-upgrade');
const upgradeDeb = path.join(upgradeDir, 'tsgunicorn.deb');
// Newer than the main build (0.1.0-1 < 0.1.0+e2e-1); its program reports 0.1.0+e2e.
const upgradeProgramVersion = `${(JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string }).version}+e2e`;
// Everything the package is built from.
const debInputs = ['src', 'bin', 'systemd', 'packaging', 'native', 'package.json', 'package-lock.json'];
// The ports the tests reach the containers' servers on: the host's own, as the containers share its network.
const testPorts = [8000, 9001];

export async function setup(project: TestProject): Promise<void> {
  checkPrerequisites();
  for (const port of testPorts) await assertPortFree(port);
  for (const suite of SUITES) {
    const started = Date.now();
    const rootfs = await ensureRootfs(suite);
    const took = Date.now() - started;
    if (took > 1_000) console.log(`e2e: built the ${suite} rootfs in ${(took / 1000).toFixed(0)} s (${rootfs})`);
  }
  const given = process.env.E2E_DEB;
  if (given) {
    project.provide('deb', path.resolve(given));
    project.provide('debError', existsSync(given) ? '' : `E2E_DEB=${given}: no such file`);
  } else {
    project.provide('deb', deb);
    project.provide('debError', await buildDeb(deb, 'npm run package', ['npm', 'run', 'package', '--prefix', repo]));
  }
  // After the main build, which has compiled dist/js.
  project.provide('upgradeDeb', upgradeDeb);
  project.provide('upgradeProgramVersion', upgradeProgramVersion);
  project.provide(
    'upgradeDebError',
    await buildDeb(upgradeDeb, `DEB_VERSION=${upgradeProgramVersion}-1 packaging/build-deb.sh`, [
      'env',
      `DEB_VERSION=${upgradeProgramVersion}-1`,
      `DEB_OUTDIR=${upgradeDir}`,
      'bash',
      path.join(repo, 'packaging/build-deb.sh'),
    ]),
  );
}

/** Runs `command` unless `target` is newer than every input; returns why it failed, or ''. */
export async function buildDeb(target: string, what: string, [cmd, ...args]: string[]): Promise<string> {
  if (existsSync(target) && statSync(target).mtimeMs >= newestMtime(debInputs.map((p) => path.join(repo, p)))) return '';
  console.log(`e2e: building ${path.relative(repo, target)} (${what})`);
  const r = await runHost(cmd!, args, 20 * 60_000);
  if (r.code !== 0) return `${what} exited ${r.code}:\n${tail(r.stdout + r.stderr, 40)}`;
  if (!existsSync(target)) return `${what} succeeded but did not make ${target}`;
  return '';
}

function newestMtime(paths: string[]): number {
  let newest = 0;
  for (const p of paths) {
    if (!existsSync(p)) continue;
    const st = statSync(p);
    newest = Math.max(newest, st.mtimeMs);
    if (st.isDirectory()) newest = Math.max(newest, newestMtime(readdirSync(p).map((n) => path.join(p, n))));
  }
  return newest;
}

function assertPortFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(`port ${port} is taken on this machine (${err.code}): the e2e containers share the host's network and need it free`),
      ),
    );
    server.listen({ port, host: '0.0.0.0', exclusive: true }, () => server.close(() => resolve()));
  });
}
