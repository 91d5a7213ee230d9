// The APP spec (`MODULE[:NAME]` or `MODULE:factory(ARGS)`) and the file it names:
// MODULE is a .js/.mjs/.cjs/.ts file, or a directory standing for its package's
// entry point. Checked in the CLI before anything is forked, and again in workers.
import { accessSync, constants, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { EXIT } from '../ipc.js';

export interface AppSpec {
  module: string;
  name: string;
  /** Present for `factory(ARGS)`: the factory is called with these and awaited. */
  args: unknown[] | null;
  /** NAME was written: only that export is served (no default export, no server script). */
  explicitName: boolean;
}

/**
 * A problem with the APP spec or its module, with a message for the operator;
 * the worker exits with `exitCode` (4 by default; 3 for an app that never starts serving).
 */
export class AppLoadError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.APP_LOAD_ERROR,
  ) {
    super(message);
  }
}

/**
 * A failed load as the operator reads it, and the exit code it means: an
 * AppLoadError is the operator's to fix and says all in its message; anything
 * else (the app's own error) shows its stack.
 */
export function describeLoadFailure(err: unknown): { message: string; exitCode: number } {
  if (err instanceof AppLoadError) return { message: err.message, exitCode: err.exitCode };
  return { message: err instanceof Error ? (err.stack ?? err.message) : String(err), exitCode: EXIT.APP_LOAD_ERROR };
}

export const MODULE_EXTENSIONS = /\.(m|c)?(j|t)s$/;

const EXTENSIONS = ['.js', '.mjs', '.cjs', '.ts'];

/** What a directory APP stands for when its package.json has no `main`, in this order (server.js: Next.js standalone). */
const ENTRY_BASES = ['server', 'index', 'app'];
const ENTRY_CANDIDATES = ENTRY_BASES.flatMap((base) => EXTENSIONS.map((ext) => base + ext));
/** Where a directory's entry point is looked for, as messages say it. */
export const ENTRY_POINT_SEARCH = `package.json "main", then ${ENTRY_BASES.map((b) => `${b}.*`).join(', ')} (${EXTENSIONS.join('/')})`;

export function parseAppSpec(spec: string): AppSpec {
  // MODULE may itself hold a colon only as a Windows drive letter, which we do not support.
  const colon = spec.indexOf(':');
  const module = colon === -1 ? spec : spec.slice(0, colon);
  const target = colon === -1 ? 'app' : spec.slice(colon + 1).trim();
  if (module === '') throw new AppLoadError(`APP ${JSON.stringify(spec)}: MODULE is missing, as in app.ts or app.ts:app`);
  const call = /^([A-Za-z_$][\w$]*)\((.*)\)$/s.exec(target);
  if (call) {
    let args: unknown;
    try {
      args = JSON.parse(`[${call[2]}]`);
    } catch {
      throw new AppLoadError(`APP ${JSON.stringify(spec)}: factory arguments must be JSON values, as in create("prod", 3)`);
    }
    return { module, name: call[1]!, args: args as unknown[], explicitName: true };
  }
  if (!/^[A-Za-z_$][\w$]*$/.test(target)) {
    throw new AppLoadError(`APP ${JSON.stringify(spec)}: NAME must be an export name or factory(ARGS)`);
  }
  return { module, name: target, args: null, explicitName: colon !== -1 };
}

/**
 * The absolute path of the file APP's MODULE names, relative to `cwd`: the file
 * itself, or for a directory its package.json `main`, else the first of
 * ENTRY_CANDIDATES it holds.
 */
export function resolveAppModule(module: string, cwd: string): string {
  const target = path.resolve(cwd, module);
  const stat = statOrNull(target);
  if (!stat) throw new AppLoadError(`APP module ${target} does not exist`);
  const found = stat.isDirectory() ? entryPointOf(target) : target;
  const file = MODULE_EXTENSIONS.test(found) ? found : binScript(found);
  if (!file) {
    throw new AppLoadError(
      `APP ${JSON.stringify(module)}: MODULE must be a .js, .mjs, .cjs or .ts file, a directory, or a package's bin ` +
        '(a node_modules/.bin link, or a node script starting with #!), as in app.ts, build/ or node_modules/.bin/react-router-serve',
    );
  }
  try {
    accessSync(file, constants.R_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new AppLoadError(`APP module ${file} cannot be read (${code === 'EACCES' ? 'permission denied' : code})`);
  }
  checkTypeScriptSupport(file);
  return file;
}

/**
 * The script a package's bin runs, or null: what a node_modules/.bin link points
 * to, a file node runs itself (`#!/usr/bin/env node`), or the script a shell
 * shim (pnpm's, cmd-shim's) runs with `exec node "$basedir/…"`.
 */
function binScript(file: string): string | null {
  const real = realpathSync(file);
  if (MODULE_EXTENSIONS.test(real)) return real;
  let head: string;
  try {
    head = readFileSync(real, 'utf8').slice(0, 4096);
  } catch {
    return null;
  }
  const shebang = /^#!(.*)/.exec(head)?.[1];
  if (!shebang) return null;
  if (/\bnode\b/.test(shebang)) return real;
  const shimmed = /"\$basedir\/([^"]+)"/g;
  for (const [, target] of head.matchAll(shimmed)) if (MODULE_EXTENSIONS.test(target!)) return path.resolve(path.dirname(file), target!);
  return null;
}

function entryPointOf(dir: string): string {
  const found = findEntryPoint(dir);
  if (!found) {
    throw new AppLoadError(
      `APP directory ${dir} has no entry point (looked for ${ENTRY_POINT_SEARCH}): give its package.json a "main", or add a server.js`,
    );
  }
  return path.join(dir, found);
}

/**
 * The entry point of an app directory, relative to it, or null: package.json's
 * `main` as Node resolves it (the file, the file with an extension, its
 * index.*), else the first of ENTRY_CANDIDATES; a `main` naming no file falls
 * back to those, as require() of a directory does.
 */
export function findEntryPoint(dir: string): string | null {
  const main = packageMain(dir);
  if (main) return main;
  return ENTRY_CANDIDATES.find((file) => statOrNull(path.join(dir, file))?.isFile()) ?? null;
}

function packageMain(dir: string): string | null {
  let main: unknown;
  try {
    main = (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { main?: unknown }).main;
  } catch {
    return null;
  }
  if (typeof main !== 'string' || main.trim() === '') return null;
  const base = path.normalize(main.trim());
  const tries = [base, ...EXTENSIONS.map((ext) => base + ext), ...EXTENSIONS.map((ext) => path.join(base, `index${ext}`))];
  return tries.find((file) => statOrNull(path.join(dir, file))?.isFile()) ?? null;
}

/**
 * Type stripping came in Node 22.18/23.6; an older Node (say, a machine's own
 * Node 20 under npx) fails on a .ts app with ERR_UNKNOWN_FILE_EXTENSION, which
 * does not say what to do.
 */
export function checkTypeScriptSupport(file: string, features: { typescript?: unknown } = process.features): void {
  if (!/\.(m|c)?ts$/.test(file) || features.typescript) return;
  throw new AppLoadError(
    `${file} is TypeScript, and this Node.js (${process.version}) cannot strip its types: run tsgunicorn with Node.js 24 ` +
      '(or 22.18+) without --no-experimental-strip-types (npx uses the node on your PATH), or compile the app to JavaScript',
  );
}

function statOrNull(file: string): ReturnType<typeof statSync> | null {
  try {
    return statSync(file);
  } catch {
    return null;
  }
}
