// The `preload` setting: modules a worker loads before the app, as
// `node --require X` / `node --import X` would. APM agents document that form:
// they must patch http and the frameworks before the app loads them.
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { AppLoadError, parseAppSpec, resolveAppModule } from './spec.js';

const require = createRequire(import.meta.url);

/** Where preloads are looked up: the working directory (chdir), as node does, then the app module's own directory. */
export function preloadSearchDirs(app: string | null, cwd: string): string[] {
  let appDir = cwd;
  try {
    if (app !== null) appDir = path.dirname(resolveAppModule(parseAppSpec(app).module, cwd));
  } catch {
    // A missing app is reported as such, by whoever loads it.
  }
  return appDir === cwd ? [cwd] : [cwd, appDir];
}

/**
 * The file a preload names, found as require.resolve finds it (a package's
 * "require" or "default" export), so one name serves CommonJS and ESM agents.
 */
export function resolvePreload(specifier: string, dirs: string[]): string {
  try {
    return require.resolve(specifier, { paths: dirs });
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new AppLoadError(
      `preload ${specifier}: cannot be found from ${dirs.join(' or ')} (${why}): install the package where the app's ` +
        'node_modules are, or give the path of the module',
    );
  }
}

/** Loads each preload, in order, ESM or CommonJS; the first that fails ends the boot with its own error. */
export async function runPreloads(specifiers: readonly string[], dirs: string[]): Promise<void> {
  for (const specifier of specifiers) {
    const file = resolvePreload(specifier, dirs);
    try {
      await import(path.isAbsolute(file) ? pathToFileURL(file).href : file);
    } catch (err) {
      throw new AppLoadError(
        `preload ${specifier} (${file}) failed to load: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
      );
    }
  }
}
