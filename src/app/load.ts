// Loads the user's app from an APP spec (`MODULE[:NAME]` or `MODULE:factory(ARGS)`)
// and turns whatever it exports into one node:http request listener.
import { accessSync, constants, existsSync } from 'node:fs';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface LoadedApp {
  listener: RequestListener;
  /** `upgrade(req, socket, head)` exported beside the app, for WebSocket and other Upgrade requests. */
  upgrade: UpgradeHandler | null;
  interface: 'node' | 'fetch';
}

export interface AppSpec {
  module: string;
  name: string;
  /** Present for `factory(ARGS)`: the factory is called with these and awaited. */
  args: unknown[] | null;
}

/** A problem with the APP spec or its module, with a message for the operator. */
export class AppLoadError extends Error {}

const MODULE_EXTENSIONS = /\.(m|c)?(j|t)s$/;

export function parseAppSpec(spec: string): AppSpec {
  // MODULE may itself hold a colon only as a Windows drive letter, which we do not support.
  const colon = spec.indexOf(':');
  const module = colon === -1 ? spec : spec.slice(0, colon);
  const target = colon === -1 ? 'app' : spec.slice(colon + 1).trim();
  if (!MODULE_EXTENSIONS.test(module)) {
    throw new AppLoadError(`APP ${JSON.stringify(spec)}: MODULE must be a .js, .mjs, .cjs or .ts file, as in app.ts or app.ts:app`);
  }
  const call = /^([A-Za-z_$][\w$]*)\((.*)\)$/s.exec(target);
  if (call) {
    let args: unknown;
    try {
      args = JSON.parse(`[${call[2]}]`);
    } catch {
      throw new AppLoadError(`APP ${JSON.stringify(spec)}: factory arguments must be JSON values, as in create("prod", 3)`);
    }
    return { module, name: call[1]!, args: args as unknown[] };
  }
  if (!/^[A-Za-z_$][\w$]*$/.test(target)) {
    throw new AppLoadError(`APP ${JSON.stringify(spec)}: NAME must be an export name or factory(ARGS)`);
  }
  return { module, name: target, args: null };
}

export async function loadApp(spec: string, cwd: string, forced: 'auto' | 'node' | 'fetch'): Promise<LoadedApp> {
  const parsed = parseAppSpec(spec);
  const file = path.resolve(cwd, parsed.module);
  if (!existsSync(file)) throw new AppLoadError(`APP module ${file} does not exist`);
  try {
    accessSync(file, constants.R_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new AppLoadError(`APP module ${file} cannot be read (${code === 'EACCES' ? 'permission denied' : code})`);
  }
  const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  let exported = parsed.name in mod ? mod[parsed.name] : parsed.name === 'app' ? mod.default : undefined;
  if (exported === undefined) {
    const names = Object.keys(mod).join(', ') || 'none';
    throw new AppLoadError(`${file} has no export named ${JSON.stringify(parsed.name)} (its exports: ${names})`);
  }
  if (parsed.args) {
    if (typeof exported !== 'function') throw new AppLoadError(`${file}: ${parsed.name} is not a function, so it cannot be called as a factory`);
    exported = await (exported as (...a: unknown[]) => unknown)(...parsed.args);
  }
  const upgrade = typeof mod.upgrade === 'function' ? (mod.upgrade as UpgradeHandler) : null;
  const kind = forced === 'auto' ? detectInterface(exported, file, parsed.name) : forced;
  return { listener: await toListener(exported, kind, file, parsed.name), upgrade, interface: kind };
}

function detectInterface(app: unknown, file: string, name: string): 'node' | 'fetch' {
  if (app !== null && typeof app === 'object') {
    if (typeof (app as { fetch?: unknown }).fetch === 'function') return 'fetch';
    if (typeof (app as { callback?: unknown }).callback === 'function') return 'node'; // a Koa app
  }
  if (typeof app === 'function') {
    // (req, res) or Express's (req, res, next) vs a fetch handler (request) => Response.
    return app.length >= 2 ? 'node' : 'fetch';
  }
  throw new AppLoadError(
    `${file}: ${name} is neither a (req, res) listener nor a fetch handler; export a function, an object with fetch(request), or a Koa app`,
  );
}

type FetchHandler = (request: Request) => Response | Promise<Response>;

async function toListener(app: unknown, kind: 'node' | 'fetch', file: string, name: string): Promise<RequestListener> {
  if (kind === 'node') {
    if (typeof app === 'function') return app as RequestListener;
    const koa = app as { callback?: () => RequestListener };
    if (app && typeof koa.callback === 'function') return koa.callback();
    throw new AppLoadError(`${file}: ${name} is not a (req, res) listener (interface = node)`);
  }
  const fetchApp = app as { fetch?: FetchHandler };
  const handler: FetchHandler | undefined =
    typeof app === 'function' ? (app as FetchHandler) : typeof fetchApp?.fetch === 'function' ? fetchApp.fetch.bind(app) : undefined;
  if (!handler) throw new AppLoadError(`${file}: ${name} has no fetch(request) method (interface = fetch)`);
  // Loaded only for fetch apps: it is a good part of a worker's boot time.
  const { getRequestListener } = await import('@hono/node-server');
  return getRequestListener(handler) as (req: IncomingMessage, res: ServerResponse) => Promise<void>;
}
