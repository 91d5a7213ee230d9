// Builds the framework fixtures that need a build step (NestJS's TypeScript,
// Next.js's standalone server) once, and keeps each build on disk keyed by a
// hash of its sources, package-lock.json and this file, so a later test run
// starts at once.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { FIXTURES, ROOT } from './tsgunicorn.js';

const run = promisify(execFile);
const require = createRequire(import.meta.url);
export const FRAMEWORKS = path.join(FIXTURES, 'frameworks');
const CACHE = path.join(ROOT, 'node_modules', '.cache', 'tsgunicorn-frameworks');
// Build outputs inside a fixture directory are not its sources.
const OUTPUTS = new Set(['.next', 'dist', 'node_modules']);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((rel) => !OUTPUTS.has(rel.split(path.sep)[0]!))
    .filter((rel) => statSync(path.join(dir, rel)).isFile())
    .sort();
}

function hashOf(dir: string): string {
  const hash = createHash('sha256');
  for (const rel of sourceFiles(dir))
    hash
      .update(`${rel}\0`)
      .update(readFileSync(path.join(dir, rel)))
      .update('\0');
  hash.update(readFileSync(path.join(ROOT, 'package-lock.json')));
  // How a fixture is built is part of what was built.
  hash.update(readFileSync(new URL(import.meta.url)));
  return hash.digest('hex').slice(0, 16);
}

export interface Build {
  /** The file to serve. */
  entry: string;
  /** Seconds the build took, or 0 when it came from the cache. */
  seconds: number;
}

/**
 * The cached build of fixture `name`, made by `build(out)` into a fresh
 * directory when missing. The directory is renamed into place only once the
 * build succeeded, so an interrupted build is never taken for a finished one.
 */
async function cached(name: string, entry: string, build: (out: string) => Promise<void>): Promise<Build> {
  const src = path.join(FRAMEWORKS, name);
  const dir = path.join(CACHE, `${name}-${hashOf(src)}`);
  if (existsSync(path.join(dir, entry))) return { entry: path.join(dir, entry), seconds: 0 };
  mkdirSync(CACHE, { recursive: true });
  // Builds of older sources only take space.
  for (const old of readdirSync(CACHE)) if (old.startsWith(`${name}-`)) rmSync(path.join(CACHE, old), { recursive: true, force: true });
  const out = `${dir}.tmp-${process.pid}`;
  mkdirSync(out, { recursive: true });
  const started = Date.now();
  await build(out);
  renameSync(out, dir);
  if (!existsSync(path.join(dir, entry))) throw new Error(`${name}: the build did not make ${entry}`);
  return { entry: path.join(dir, entry), seconds: (Date.now() - started) / 1000 };
}

/** NestJS: `tsc` as the Nest CLI's `nest build` runs it, into dist/ beside the app's package.json. */
export function buildNest(): Promise<Build> {
  const src = path.join(FRAMEWORKS, 'nest');
  return cached('nest', 'dist/main.js', async (out) => {
    cpSync(path.join(src, 'package.json'), path.join(out, 'package.json'));
    const tsc = require.resolve('typescript/bin/tsc');
    await run(process.execPath, [tsc, '-p', path.join(src, 'tsconfig.json'), '--outDir', path.join(out, 'dist')], { cwd: src });
  });
}

/**
 * Next.js: `next build` with output: 'standalone', then the standalone tree
 * with .next/static copied into it, as Next's deployment docs say. Next traces
 * from the repository root (where the lockfile is), so the server sits at the
 * fixture's own path inside the tree.
 */
export function buildNext(): Promise<Build> {
  const src = path.join(FRAMEWORKS, 'next');
  const appDir = path.relative(ROOT, src);
  return cached('next', path.join(appDir, 'server.js'), async (out) => {
    const dotNext = path.join(src, '.next');
    rmSync(dotNext, { recursive: true, force: true });
    try {
      const next = require.resolve('next/dist/bin/next');
      await run(process.execPath, [next, 'build'], {
        cwd: src,
        env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1', NODE_ENV: 'production' },
        maxBuffer: 16 * 1024 * 1024,
      });
      rmSync(out, { recursive: true });
      // A rename, not a copy: the traced tree is large.
      renameSync(path.join(dotNext, 'standalone'), out);
      cpSync(path.join(dotNext, 'static'), path.join(out, appDir, '.next', 'static'), { recursive: true });
    } finally {
      rmSync(dotNext, { recursive: true, force: true });
    }
  });
}

/**
 * React Router (framework mode): `react-router build`, as its guide's `npm run
 * build` runs it, into build/server and build/client. Built where node finds the
 * repository's node_modules (the cache is inside it), as an app's own would.
 */
export function buildReactRouter(): Promise<Build> {
  const src = path.join(FRAMEWORKS, 'react-router');
  return cached('react-router', 'build/server/index.js', async (out) => {
    cpSync(src, out, { recursive: true, filter: (from) => !OUTPUTS.has(path.basename(from)) && path.basename(from) !== 'build' });
    await run(process.execPath, [path.join(ROOT, 'node_modules', '.bin', 'react-router'), 'build'], {
      cwd: out,
      env: { ...process.env, NODE_ENV: 'production' },
      maxBuffer: 16 * 1024 * 1024,
    });
  });
}
