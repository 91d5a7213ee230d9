// `tsgunicorn --instance NAME`, what the tsgunicorn@NAME units run: the instance's
// config is /etc/tsgunicorn/NAME.ini; without one, the app at /srv/NAME/app.* is
// served with default settings; with neither, one line says what to create.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, type CliValues } from './resolve.js';

export const INSTANCE_CONFIG_DIR = '/etc/tsgunicorn';
export const INSTANCE_APP_DIR = '/srv';
const APP_FILES = ['app.ts', 'app.js', 'app.mjs', 'app.cjs'];

export function instanceValues(
  name: string,
  cli: CliValues,
  dirs: { config: string; apps: string } = { config: INSTANCE_CONFIG_DIR, apps: INSTANCE_APP_DIR },
): CliValues {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.@-]*$/.test(name)) {
    throw new ConfigError(`instance ${JSON.stringify(name)}: a name is letters, digits, and . _ @ - (as in tsgunicorn@myapp)`);
  }
  const values: CliValues = { proc_name: name, ...cli };
  const config = path.join(dirs.config, `${name}.ini`);
  if (existsSync(config)) return { config, ...values };
  const appDir = path.join(dirs.apps, name);
  const app = APP_FILES.find((file) => existsSync(path.join(appDir, file)));
  if (app) return { app, chdir: appDir, ...values };
  throw new ConfigError(
    `instance ${name}: nothing to serve: create ${config} (example: /usr/share/tsgunicorn/examples/instance.ini) ` +
      `or put the app at ${path.join(appDir, 'app.ts')}`,
  );
}
