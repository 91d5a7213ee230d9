// Loads the user's app from an APP spec and decides how it is served: from what
// the module exports (a listener, a fetch handler, a framework object), or, when
// the module starts its own HTTP server, that server (a server script).
import type { IncomingMessage, RequestListener } from 'node:http';
import type { Duplex } from 'node:stream';
import { realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { EXIT } from '../ipc.js';
import type { Settings } from '../settings/schema.js';
import { describeValue, shapeOf, toListener, unservableExport, type Interface } from './exports.js';
import {
  captureListen,
  capturedServer,
  hasCaptured,
  resumeCapturing,
  stopCapturing,
  type CapturedServer,
  type ParkedListener,
  type ServeTarget,
} from './server-script.js';
import { AppLoadError, parseAppSpec, resolveAppModule } from './spec.js';

export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export type LoadedApp =
  | {
      interface: Interface;
      listener: RequestListener;
      /** `upgrade(req, socket, head)` exported beside the app, for WebSocket and other Upgrade requests. */
      upgrade: UpgradeHandler | null;
      file: string;
    }
  | { interface: 'server'; server: CapturedServer; file: string };

/** How long a module that exports nothing servable may take to call listen(): `timeout`, or 30 s when that is 0. */
const listenWaitMs = ({ timeout }: Pick<Settings, 'timeout'>): number => (timeout > 0 ? timeout : 30) * 1000;

export interface LoadEvents {
  /** An error thrown or rejected by a fetch handler (node listeners' are caught by the request handler). */
  onFetchError: (err: unknown) => void;
  onParked: ParkedListener;
}

/**
 * Loads settings.app (which the caller has checked is set) as a worker does. A
 * server script's server listens on `target` (null: nothing is bound, as for --check-config).
 */
export async function loadApp(
  settings: Pick<Settings, 'app' | 'app_args' | 'interface' | 'timeout' | 'bind'>,
  cwd: string,
  events: LoadEvents,
  target: ServeTarget | null = null,
): Promise<LoadedApp> {
  const parsed = parseAppSpec(settings.app!);
  const file = resolveAppModule(parsed.module, cwd);
  const shown = path.basename(file);
  process.argv = [process.argv[0]!, mainPath(path.resolve(cwd, parsed.module), file), ...settings.app_args];
  captureListen({ target, mainPorts: mainPorts(settings), onParked: events.onParked });
  // An explicit NAME is what is served: servers the module starts while imported are not.
  if (parsed.explicitName) stopCapturing();
  const releaseExitGuard = guardExitWhileLoading();
  try {
    const importing = import(pathToFileURL(file).href) as Promise<Record<string, unknown>>;
    // A module may wait (top-level await) for its server's listening event: its
    // listen() decides, not the end of the import.
    const first = await Promise.race([importing, capturedServer()]);
    if (isCaptured(first)) {
      importing.catch(rethrowOutsideLoad);
      return { interface: 'server', server: first, file };
    }
    const mod = first;
    if (hasCaptured()) return { interface: 'server', server: await capturedServer(), file };

    let exported = parsed.name in mod ? mod[parsed.name] : parsed.name === 'app' && !parsed.explicitName ? mod.default : undefined;
    if (exported === undefined && parsed.explicitName) {
      const names = Object.keys(mod).join(', ') || 'none';
      throw new AppLoadError(`${file} has no export named ${JSON.stringify(parsed.name)} (its exports: ${names})`);
    }
    if (parsed.args) {
      if (typeof exported !== 'function')
        throw new AppLoadError(`${file}: ${parsed.name} is not a function, so it cannot be called as a factory`);
      resumeCapturing();
      exported = await (exported as (...a: unknown[]) => unknown)(...parsed.args);
      if (hasCaptured()) return { interface: 'server', server: await capturedServer(), file };
    }
    const shape = exported === undefined ? null : shapeOf(exported, settings.interface, file, parsed.name);
    if (shape === 'node' || shape === 'fetch') {
      stopCapturing();
      const upgrade = typeof mod.upgrade === 'function' ? (mod.upgrade as UpgradeHandler) : null;
      return { interface: shape, listener: await toListener(exported, shape, file, parsed.name, events.onFetchError), upgrade, file };
    }
    if (shape === 'listen') {
      resumeCapturing();
      const listening = (exported as { listen(): unknown }).listen();
      if (listening instanceof Promise) listening.catch(rethrowOutsideLoad);
    } else if (parsed.explicitName) {
      throw unservableExport(file, parsed.name, exported);
    }
    // Nothing servable exported: a script that starts its server later (after
    // async set-up, as NestJS's main.js and Next.js's server.js do).
    const waitMs = listenWaitMs(settings);
    const server = await within(capturedServer(), waitMs);
    if (server) return { interface: 'server', server, file };
    const found = shape === 'listen' ? `${parsed.name}.listen() started no HTTP server` : `its exports: ${describeExports(mod)}`;
    throw new AppLoadError(
      `${shown} neither exports an app nor starts a server with listen() within ${waitMs / 1000} s (${found}). ` +
        'Export the app (export default app, or APP = MODULE:NAME), or let the file call listen() itself',
      EXIT.WORKER_BOOT_ERROR,
    );
  } finally {
    releaseExitGuard();
  }
}

/**
 * process.argv[1] as when APP is run: the path as given, made absolute (a .bin
 * link stays a link, as node leaves it), except for a shell shim, which execs
 * node on the script it names.
 */
function mainPath(given: string, file: string): string {
  return statSync(given).isFile() && realpathSync(given) !== file ? file : given;
}

/** $PORT and the ports tsgunicorn binds: a server asking for one of them is the app's main server. */
function mainPorts({ bind }: Pick<Settings, 'bind'>): number[] {
  const ports = bind.flatMap((address) => (address.kind === 'tcp' && address.port > 0 ? [address.port] : []));
  const port = Number(process.env.PORT);
  return Number.isInteger(port) && port > 0 ? [port, ...ports] : ports;
}

function isCaptured(value: unknown): value is CapturedServer {
  return typeof value === 'object' && value !== null && value === hasCaptured();
}

function describeExports(mod: Record<string, unknown>): string {
  const names = Object.keys(mod);
  if (names.length === 0) return 'none';
  return names.map((name) => `${name} (${describeValue(mod[name])})`).join(', ');
}

function within<T>(promise: Promise<T>, ms: number): Promise<T | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), ms);
    void promise.then((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

// After the decision, the rest of the app's start-up runs on; its failure is an
// uncaught error of the running worker, not of the load.
function rethrowOutsideLoad(err: unknown): void {
  process.nextTick(() => {
    throw err;
  });
}

// A module that calls process.exit() while being imported failed to load (exit 4),
// whatever code it chose; the master then says so.
function guardExitWhileLoading(): () => void {
  const onExit = () => {
    process.exitCode = EXIT.APP_LOAD_ERROR;
  };
  process.on('exit', onExit);
  return () => process.off('exit', onExit);
}
