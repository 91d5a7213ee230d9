import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { shapeOf } from '../../src/app/exports.js';
import { AppLoadError, checkTypeScriptSupport, parseAppSpec, resolveAppModule } from '../../src/app/spec.js';

describe('APP spec', () => {
  it('MODULE, MODULE:NAME and MODULE:factory(JSON args)', () => {
    expect(parseAppSpec('app.ts')).toEqual({ module: 'app.ts', name: 'app', args: null, explicitName: false });
    expect(parseAppSpec('src/main.mjs:server')).toEqual({ module: 'src/main.mjs', name: 'server', args: null, explicitName: true });
    expect(parseAppSpec('app.js:create("prod", 3, {"a": true})')).toEqual({
      module: 'app.js',
      name: 'create',
      args: ['prod', 3, { a: true }],
      explicitName: true,
    });
    expect(parseAppSpec('build/')).toMatchObject({ module: 'build/', name: 'app', explicitName: false });
    expect(() => parseAppSpec("app.js:create('x')")).toThrow(/JSON values/);
    expect(() => parseAppSpec('app.js:1bad')).toThrow(/NAME must be/);
    expect(() => parseAppSpec(':app')).toThrow(/MODULE is missing/);
  });
});

describe('the file APP names', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'tsg-spec-'));
  const tree = (files: Record<string, string>): string => {
    const dir = mkdtempSync(path.join(root, 'd-'));
    for (const [name, content] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      writeFileSync(path.join(dir, name), content);
    }
    return dir;
  };

  it('a file, relative to the working directory', () => {
    const dir = tree({ 'app.mjs': '' });
    expect(resolveAppModule('app.mjs', dir)).toBe(path.join(dir, 'app.mjs'));
    expect(() => resolveAppModule('missing.mjs', dir)).toThrow(`APP module ${path.join(dir, 'missing.mjs')} does not exist`);
  });

  it('only JavaScript and TypeScript files, directories and package bins', () => {
    const dir = tree({ 'app.py': '', 'tool.sh': '#!/bin/sh\nexec python3 "$basedir/app.py" "$@"\n' });
    for (const refused of ['app.py', 'tool.sh']) {
      expect(() => resolveAppModule(refused, dir)).toThrow(/MODULE must be a .js, .mjs, .cjs or .ts file, a directory, or a package's bin/);
    }
  });

  it("a directory stands for its package.json main, with Node's extension and index fallbacks", () => {
    expect(resolveAppModule('.', tree({ 'package.json': '{"main": "dist/main.js"}', 'dist/main.js': '', 'server.js': '' }))).toMatch(
      /dist\/main\.js$/,
    );
    expect(resolveAppModule('.', tree({ 'package.json': '{"main": "dist/main"}', 'dist/main.js': '' }))).toMatch(/dist\/main\.js$/);
    expect(resolveAppModule('.', tree({ 'package.json': '{"main": "lib"}', 'lib/index.js': '' }))).toMatch(/lib\/index\.js$/);
  });

  it('without main: server.*, then index.*, then app.* (a Next.js standalone tree, a SvelteKit build, a Nitro output)', () => {
    expect(
      resolveAppModule(
        'standalone',
        tree({ 'standalone/package.json': '{"name": "web"}', 'standalone/server.js': '', 'standalone/app.js': '' }),
      ),
    ).toMatch(/standalone\/server\.js$/);
    expect(resolveAppModule('build', tree({ 'build/index.js': '', 'build/app.js': '' }))).toMatch(/build\/index\.js$/);
    expect(resolveAppModule('.output/server', tree({ '.output/server/index.mjs': '' }))).toMatch(/index\.mjs$/);
    expect(resolveAppModule('.', tree({ 'app.ts': '' }))).toMatch(/app\.ts$/);
  });

  it('says what is missing in a directory', () => {
    const empty = tree({ 'README.md': '' });
    expect(() => resolveAppModule('.', empty)).toThrow(
      `APP directory ${empty} has no entry point (looked for package.json "main", then server.*, index.*, app.* (.js/.mjs/.cjs/.ts)): give its package.json a "main", or add a server.js`,
    );
    // As require() of a directory: a main naming no file falls back to the usual names.
    expect(resolveAppModule('.', tree({ 'package.json': '{"main": "dist/gone.js"}', 'index.mjs': '' }))).toMatch(/index\.mjs$/);
  });

  it('a .ts app on a Node without type stripping says which Node it needs', () => {
    expect(() => checkTypeScriptSupport('/srv/app.ts', {})).toThrow(
      /is TypeScript, and this Node.js \(v[\d.]+\) cannot strip its types: run tsgunicorn with Node.js 24/,
    );
    expect(() => checkTypeScriptSupport('/srv/app.mts', { typescript: false })).toThrow(AppLoadError);
    expect(() => checkTypeScriptSupport('/srv/app.ts', { typescript: 'strip' })).not.toThrow();
    expect(() => checkTypeScriptSupport('/srv/app.js', {})).not.toThrow();
  });
});

describe('how an export is served', () => {
  const shape = (app: unknown) => shapeOf(app, 'auto', 'app.mjs', 'app');

  it('by its shape: (req, res) or Koa → node; fetch(request) → fetch; a framework object with listen() → listen', () => {
    expect(shape((_req: unknown, _res: unknown) => {})).toBe('node');
    expect(shape((_req: unknown, _res: unknown, _next: unknown) => {})).toBe('node');
    expect(shape((_request: unknown) => new Response())).toBe('fetch');
    expect(shape({ fetch: () => {} })).toBe('fetch');
    expect(shape({ callback: () => {}, listen: () => {} })).toBe('node');
    expect(shape({ listen: () => {}, ready: () => {}, server: {} })).toBe('listen');
    expect(shape({})).toBeNull();
    expect(shape('app')).toBeNull();
  });

  it('refuses a function that declares no parameters, naming the setting that decides', () => {
    const wrapped = (...args: unknown[]) => args;
    expect(() => shape(wrapped)).toThrow(/declares no parameters.*set interface = node or interface = fetch/);
    expect(shapeOf(wrapped, 'node', 'app.mjs', 'app')).toBe('node');
  });
});
