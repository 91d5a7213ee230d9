// Runs a script in a child of the pinned node that records every module it
// loads (module.registerHooks), to check which modules a process pulls in.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** What the child had loaded, its resident memory, and what the script passed, when it called mark(). */
export interface LoadMark {
  loaded: string[];
  rss: number;
  data?: unknown;
}

/** The file: URL of a built module, e.g. builtModule('metrics/aggregator.js'). */
export const builtModule = (path: string): string => new URL(`../../dist/js/${path}`, import.meta.url).href;

export const isPromClient = (url: string): boolean => url.includes('/prom-client/');

/**
 * Runs `script` as an ES module in the pinned node. It loads what it checks with
 * `await import(...)`, since a static import would load before the hook, and calls
 * `mark(name, data?)` to record the state at that point.
 */
export async function recordLoads<Mark extends string>(marks: readonly Mark[], script: string): Promise<Record<Mark, LoadMark>> {
  const child = `
    import { registerHooks } from 'node:module';
    const loaded = [];
    registerHooks({ load(url, context, nextLoad) { loaded.push(url); return nextLoad(url, context); } });
    const marks = {};
    const mark = (name, data) => {
      gc();
      marks[name] = { loaded: [...loaded], rss: process.memoryUsage.rss(), data };
    };
    ${script}
    console.log(JSON.stringify(marks));`;
  const { stdout } = await run(process.execPath, [
    '--expose-gc',
    '--disable-warning=ExperimentalWarning',
    '--input-type=module',
    '-e',
    child,
  ]);
  const recorded = JSON.parse(stdout) as Partial<Record<Mark, LoadMark>>;
  const missing = marks.filter((name) => recorded[name] === undefined);
  if (missing.length > 0) throw new Error(`the script did not mark ${missing.join(', ')}`);
  return recorded as Record<Mark, LoadMark>;
}
