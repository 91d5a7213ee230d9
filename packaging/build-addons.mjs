// Builds the optional native addons (sd-notify, systemd-journald, and
// tsgunicorn's own native/reaper and native/watchdog) against the
// headers of the pinned runtime that runs them, not the machine's own node.
// npm does not run dependency install scripts it has not been told to allow, and
// where it does they build against whatever `nodedir` the user's npm points at,
// so the project builds them itself. A failed build is not fatal: tsgunicorn
// runs without them (no systemd notifications, plain-text logs, a heartbeat
// thread with its own V8 isolate).
//
// Usage: node packaging/build-addons.mjs [NODE_MODULES]
// With no argument it builds the addons in this project's node_modules (npm's
// postinstall). packaging/stage.sh passes the production node_modules it lays
// out, which has neither node-gyp nor the headers: both still come from here.
// When dpkg-architecture's DEB_HOST_ARCH names another architecture than the
// build machine's (build-deb.sh --arch), the addons are cross-compiled with
// Debian's DEB_HOST_GNU_TYPE-gcc/g++ against that architecture's runtime
// headers and its multiarch libsystemd-dev.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { buildArch, npmCpu, runtimeDir } from './runtime.mjs';

const root = path.resolve(import.meta.dirname, '..');
const modules = path.join(root, 'node_modules');
const target = path.resolve(process.argv[2] ?? modules);
const addons = ['sd-notify', 'systemd-journald'];
const ownAddons = ['reaper', 'watchdog'];

// node-gyp wants a source-tree layout (common.gypi at the top, headers under
// include/node); the runtime package ships the headers under include/node.
const hostArch = process.env.DEB_HOST_ARCH || buildArch();
const cross = hostArch !== buildArch();
const runtimeHeaders = path.join(runtimeDir(hostArch), 'include', 'node');
const nodedir = path.join(modules, '.cache', `tsgunicorn-node-headers-${hostArch}`);
if (!existsSync(runtimeHeaders)) {
  console.error(`build-addons: ${runtimeHeaders} missing; the pinned runtime is not installed`);
  process.exit(0);
}
rmSync(nodedir, { recursive: true, force: true });
mkdirSync(path.join(nodedir, 'include'), { recursive: true });
symlinkSync(runtimeHeaders, path.join(nodedir, 'include', 'node'));
symlinkSync(path.join(runtimeHeaders, 'common.gypi'), path.join(nodedir, 'common.gypi'));

const require = createRequire(import.meta.url);
const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js');
// npm exports its own config to scripts (npm_config_nodedir among it), which
// node-gyp would prefer over the runtime's headers.
const env = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !/^npm_config_(nodedir|devdir|target|runtime|dist_url)$/i.test(k)),
);
const gypArgs = [`--nodedir=${nodedir}`];
if (cross) {
  const triplet = process.env.DEB_HOST_GNU_TYPE;
  Object.assign(env, { CC: `${triplet}-gcc`, CXX: `${triplet}-g++`, LINK: `${triplet}-g++`, AR: `${triplet}-ar` });
  // pkg-config's answers (libsystemd's flags) for the target's multiarch libraries, not the build machine's.
  env.PKG_CONFIG_LIBDIR = `/usr/lib/${process.env.DEB_HOST_MULTIARCH}/pkgconfig:/usr/share/pkgconfig`;
  // The target CPU in Node's terms: common.gypi's compiler flags depend on it.
  gypArgs.push(`--arch=${npmCpu(hostArch)}`);
}
// tsgunicorn's own addons (native/) sit beside the node_modules they are built for.
const dirs = [...addons.map((name) => path.join(target, name)), ...ownAddons.map((name) => path.join(target, '..', 'native', name))];
for (const dir of dirs) {
  const name = path.basename(dir);
  if (!existsSync(dir)) continue;
  try {
    execFileSync(process.execPath, [nodeGyp, 'rebuild', ...gypArgs], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
    console.log(`build-addons: ${name} built for node ${process.versions.node} on ${hostArch}`);
  } catch (err) {
    const stderr = String(err.stderr ?? '')
      .split('\n')
      .filter((l) => /error/i.test(l))
      .slice(0, 5)
      .join('\n');
    const hints = {
      reaper: 'as PID 1 it will not reap orphaned processes, and a worker booting when the master is killed lives on until its import ends',
      watchdog: "each worker's heartbeat runs on a node:worker_threads thread instead",
    };
    const hint = hints[name] ?? 'is libsystemd-dev installed?';
    console.warn(`build-addons: ${name} not built (${hint}); tsgunicorn will run without it\n${stderr}`);
  }
}
