// Server hooks, at Gunicorn's points, from the module named by the `hooks` setting.
// A throwing hook is logged with its name and the server carries on; only
// on_starting aborts the start (the caller decides, from `run`'s result).
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export type HookName = 'on_starting' | 'when_ready' | 'on_reload' | 'post_worker_init' | 'worker_exit' | 'on_exit';

export interface Hooks {
  /** Runs the hook if the module exports it; resolves false when it threw. */
  run(name: HookName, ...args: unknown[]): Promise<boolean>;
}

const noHooks: Hooks = { run: () => Promise.resolve(true) };

export async function loadHooks(modulePath: string | null, cwd: string, log: { error(msg: string, err?: unknown): void }): Promise<Hooks> {
  if (!modulePath) return noHooks;
  const mod = (await import(pathToFileURL(path.resolve(cwd, modulePath)).href)) as Record<string, unknown>;
  return {
    async run(name, ...args) {
      const hook = mod[name];
      if (typeof hook !== 'function') return true;
      try {
        await Reflect.apply(hook, undefined, args);
        return true;
      } catch (err) {
        log.error(`Hook ${name} failed`, err);
        return false;
      }
    },
  };
}
