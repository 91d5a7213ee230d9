// `tsgunicorn --instance NAME`, what the tsgunicorn@NAME units run: the instance's
// config is /etc/tsgunicorn/NAME.ini; the app is the one it names, else the one
// found in /srv/NAME (which is then the working directory), so an ini that only
// tunes settings composes with an app dropped into /srv/NAME. Resolved afresh on
// every reload: an ini created after the start is read by the next reload.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ENTRY_POINT_SEARCH, findEntryPoint } from '../app/spec.js';
import { ConfigError, resolveSettings, type CliValues, type ResolvedSettings } from './resolve.js';

export const INSTANCE_CONFIG_DIR = '/etc/tsgunicorn';
export const INSTANCE_APP_DIR = '/srv';
const EXAMPLE_CONFIG = '/usr/share/tsgunicorn/examples/instance.ini';

export interface InstanceDirs {
  config: string;
  apps: string;
}

const defaultDirs: InstanceDirs = { config: INSTANCE_CONFIG_DIR, apps: INSTANCE_APP_DIR };

export function instanceSettings(
  name: string,
  cli: CliValues,
  env: NodeJS.ProcessEnv = process.env,
  dirs: InstanceDirs = defaultDirs,
): ResolvedSettings {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.@-]*$/.test(name)) {
    throw new ConfigError(`instance ${JSON.stringify(name)}: a name is letters, digits, and . _ @ - (as in tsgunicorn@myapp)`);
  }
  const config = path.join(dirs.config, `${name}.ini`);
  const hasConfig = existsSync(config);
  const resolved = resolveSettings({ proc_name: name, ...(hasConfig ? { config } : {}), ...cli }, env);
  if (resolved.settings.app) return resolved;

  const appDir = path.join(dirs.apps, name);
  const app = findEntryPoint(appDir);
  if (!app) {
    const ini = hasConfig ? `${config} sets no app` : `no ${config}`;
    throw new ConfigError(
      `instance ${name}: nothing to serve: ${ini}, and ${appDir} holds no app (looked for ${ENTRY_POINT_SEARCH}): ` +
        `${hasConfig ? `add \`app = FILE\` to ${config}` : `create ${config} (example: ${EXAMPLE_CONFIG})`} ` +
        `or put the app at ${path.join(appDir, 'app.ts')}`,
    );
  }
  const { settings, sources } = resolved;
  settings.app = path.join(appDir, app);
  sources.app = { kind: 'instance', dir: appDir };
  if (!settings.chdir) {
    settings.chdir = appDir;
    sources.chdir = { kind: 'instance', dir: appDir };
  }
  return resolved;
}
