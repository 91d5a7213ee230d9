// `reload`, for development: a changed source file reloads like HUP does.
import { watch } from 'node:fs';
import { MODULE_EXTENSIONS } from '../app/spec.js';
import type { Logger } from '../logging/logger.js';

/** Watches the working directory; returns what stops watching. */
export function watchSources(logger: Logger, reload: () => void): () => void {
  const root = process.cwd();
  let pending: NodeJS.Timeout | undefined;
  const watcher = watch(root, { recursive: true }, (_event, file) => {
    if (!file || /(^|\/)(node_modules|\.[^/]+)(\/|$)/.test(file)) return;
    if (!MODULE_EXTENSIONS.test(file) && !file.endsWith('.json')) return;
    clearTimeout(pending);
    pending = setTimeout(() => {
      logger.info(`${file} changed: reloading`);
      reload();
    }, 200);
  });
  watcher.on('error', (err) => logger.warning(`reload: cannot watch ${root} (${err.message}); edit, then send HUP`));
  return () => {
    clearTimeout(pending);
    watcher.close();
  };
}
