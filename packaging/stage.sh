#!/bin/bash
# Lays out the installed tree of tsgunicorn under DESTDIR, as the .deb installs
# it (build-deb.sh packs it; the e2e tests use it directly):
#
#   usr/bin/tsgunicorn                 sh wrapper: bundled node + bundled CLI
#   usr/lib/tsgunicorn/                bin/node (pinned runtime), bin/tsgunicorn.js,
#                                      dist/js, package.json, node_modules (production),
#                                      native/reaper (the PID 1 reaper addon),
#                                      native/watchdog (the workers' heartbeat thread)
#   lib/systemd/system/                template units from systemd/
#   lib/systemd/system-generators/     tsgunicorn-generator
#   usr/lib/tmpfiles.d/tsgunicorn.conf /var/log/tsgunicorn, readable by group adm
#   etc/logrotate.d/tsgunicorn         rotation of the instances' log files (a conffile)
#   usr/share/bash-completion/completions/tsgunicorn  subcommands, instance names, options
#   usr/share/man/man1, man5           generated from the settings schema
#   usr/share/tsgunicorn/              examples/, prometheus/ (alert rules), grafana/ (dashboard)
#   usr/share/doc/tsgunicorn/          copyright (generated), changelog.Debian.gz
#
# Needs `npm run build` (dist/js) and `npm ci` (the runtime, node-gyp and the
# headers in node_modules) first. The production node_modules is installed
# from package-lock.json into a scratch copy, without install scripts; the
# native addons are then built there against the bundled runtime's headers.
#
# For another architecture than the build machine's, dpkg-architecture's
# DEB_HOST_ARCH and DEB_HOST_GNU_TYPE name it (build-deb.sh --arch sets them):
# the tree then gets that architecture's runtime and cross-compiled addons.
#
# Usage: packaging/stage.sh DESTDIR
set -euo pipefail

dest=${1:?usage: packaging/stage.sh DESTDIR}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The build machine's runtime runs the scripts; the target's is the one bundled.
runtime=$root/node_modules/.bin/node

die() { echo "stage.sh: $*" >&2; exit 1; }
[ -x "$runtime" ] || die "$runtime missing: run npm ci first"
runtime_pkg=$("$runtime" "$root/packaging/runtime.mjs" ${DEB_HOST_ARCH:-}) || die "no runtime for ${DEB_HOST_ARCH:-this machine}"
strip=${DEB_HOST_GNU_TYPE:+$DEB_HOST_GNU_TYPE-}strip
[ -f "$root/dist/js/settings/schema.js" ] || die "dist/js missing: run npm run build first"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
lib=$dest/usr/lib/tsgunicorn
doc=$dest/usr/share/doc/tsgunicorn
share=$dest/usr/share/tsgunicorn
rm -rf "$lib" "$doc" "$share" "$dest/lib" "$dest/etc"

# The app and its runtime.
install -d "$lib/bin" "$lib/dist"
cp -R "$root/dist/js" "$lib/dist/js"
install -m 0644 "$root/package.json" "$lib/package.json"
# The CLI's --version reads that file: build-deb.sh sets PROGRAM_VERSION when
# it builds a package of another version than package.json's.
if [ -n "${PROGRAM_VERSION:-}" ]; then
  "$runtime" -e 'const fs = require("node:fs"); const [file, version] = process.argv.slice(1);
    const pkg = JSON.parse(fs.readFileSync(file, "utf8"));
    if (pkg.version !== version) fs.writeFileSync(file, JSON.stringify({ ...pkg, version }, null, 2) + "\n");' \
    "$lib/package.json" "$PROGRAM_VERSION"
fi
# The entry module without its #! line: the wrapper below runs it, with the
# node options that line gives.
sed '1{/^#!/d}' "$root/bin/tsgunicorn.js" >"$lib/bin/tsgunicorn.js"
# Stripped the way dh_strip does it: the official build carries debug info.
install -m 0755 "$runtime_pkg/bin/node" "$lib/bin/node"
"$strip" --strip-unneeded --remove-section=.comment --remove-section=.note "$lib/bin/node"

# Production dependencies, exactly as locked.
cp "$root/package.json" "$root/package-lock.json" "$scratch/"
# tsgunicorn's own addons are built beside that node_modules (build-addons.mjs).
cp -R "$root/native" "$scratch/native"
rm -rf "$scratch"/native/*/build
(cd "$scratch" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error)
# The development runtime is an optional dependency (so that npm installs the
# machine's own architecture's): the bundled one is bin/node above, not a module.
# npm's record of the tree it installed (a cache npm alone reads) would still list it.
rm -rf "$scratch"/node_modules/node-linux-* "$scratch/node_modules/.package-lock.json"
# With Debian's hardening flags (as dpkg-buildpackage would pass them).
(
  export DEB_BUILD_MAINT_OPTIONS=hardening=+all
  eval "$(dpkg-buildflags --export=sh)"
  "$runtime" "$root/packaging/build-addons.mjs" "$scratch/node_modules"
)
# Of node-gyp's output only the addons themselves ship.
for addon in sd-notify/build/Release/notify.node systemd-journald/build/Release/journal_send.node; do
  built=$scratch/node_modules/$addon
  [ -f "$built" ] || die "addon $addon was not built (is libsystemd-dev installed?)"
  mv "$built" "$scratch/addon.node"
  rm -rf "${built%/Release/*}"
  install -D -m 0644 "$scratch/addon.node" "$built"
  "$strip" --strip-unneeded --remove-section=.comment --remove-section=.note "$built"
done
for addon in reaper watchdog; do
  built=$scratch/native/$addon/build/Release/$addon.node
  [ -f "$built" ] || die "addon native/$addon was not built"
  install -D -m 0644 "$built" "$lib/native/$addon/build/Release/$addon.node"
  "$strip" --strip-unneeded --remove-section=.comment --remove-section=.note "$lib/native/$addon/build/Release/$addon.node"
done
rm -rf "$scratch/node_modules/.bin"
find "$scratch/node_modules" -name .npmignore -delete
cp -R "$scratch/node_modules" "$lib/node_modules"
# Only the runtime is executed; every other file in the tree is a module it
# loads (scripts included: the wrapper names the runtime), whatever modes npm left.
find "$lib" -type f ! -path "$lib/bin/node" -exec chmod a-x {} +

# The command. The node options on the entry module's #! line (after "node")
# are the ones the CLI is meant to run with.
node_options=$(sed -n '1s/^#!.*[/ ]node\( \|$\)//p' "$root/bin/tsgunicorn.js")
install -d "$dest/usr/bin"
cat >"$dest/usr/bin/tsgunicorn" <<EOF
#!/bin/sh
# Runs the tsgunicorn CLI on the Node.js runtime bundled with it, found
# relative to this script (so an unpacked tree runs as well as an installed one).
lib=\$(dirname "\$(readlink -f "\$0")")/../lib/tsgunicorn
exec "\$lib/bin/node" ${node_options:+$node_options }"\$lib/bin/tsgunicorn.js" "\$@"
EOF
chmod 0755 "$dest/usr/bin/tsgunicorn"

# systemd units and generator, when present. In /lib, where systemd's package
# ships its own on Debian 11/12 and Ubuntu 22.04 (and debhelper puts units):
# dpkg then knows the directories have another owner, and a purge does not try
# to remove them (with a merged /usr, /usr/lib/systemd/... is the same place).
for unit in "$root"/systemd/*.service "$root"/systemd/*.socket; do
  if [ -f "$unit" ]; then
    install -D -m 0644 "$unit" "$dest/lib/systemd/system/$(basename "$unit")"
  fi
done
if [ -f "$root/systemd/tsgunicorn-generator" ]; then
  install -D -m 0755 "$root/systemd/tsgunicorn-generator" "$dest/lib/systemd/system-generators/tsgunicorn-generator"
fi
install -D -m 0644 "$root/packaging/etc/tmpfiles.conf" "$dest/usr/lib/tmpfiles.d/tsgunicorn.conf"
install -D -m 0644 "$root/packaging/etc/logrotate" "$dest/etc/logrotate.d/tsgunicorn"
install -D -m 0644 "$root/packaging/etc/bash-completion" "$dest/usr/share/bash-completion/completions/tsgunicorn"

# Examples, Prometheus rules and the Grafana dashboard.
install -d "$share/examples"
cp -R "$root/packaging/examples/hello" "$share/examples/hello"
install -m 0644 "$root/packaging/examples/instance.ini" "$share/examples/instance.ini"
if [ -f "$root/packaging/prometheus/tsgunicorn.rules.yml" ]; then
  install -D -m 0644 "$root/packaging/prometheus/tsgunicorn.rules.yml" "$share/prometheus/tsgunicorn.rules.yml"
fi
install -D -m 0644 "$root/packaging/grafana/tsgunicorn.json" "$share/grafana/tsgunicorn.json"

# Man pages.
"$runtime" "$root/packaging/gen-man.mjs" "$scratch/man"
install -D -m 0644 "$scratch/man/tsgunicorn.1" "$dest/usr/share/man/man1/tsgunicorn.1"
install -D -m 0644 "$scratch/man/tsgunicorn.ini.5" "$dest/usr/share/man/man5/tsgunicorn.ini.5"
gzip -9nf "$dest/usr/share/man/man1/tsgunicorn.1" "$dest/usr/share/man/man5/tsgunicorn.ini.5"

# Documentation: the licences of all that ships, and the Debian changelog
# (build-deb.sh passes a changelog with an added entry when DEB_VERSION asks
# for a version debian/changelog does not have).
install -d "$doc"
"$runtime" "$root/debian/gen-copyright.mjs" "$dest" "$runtime_pkg/LICENSE" >"$doc/copyright"
gzip -9nc "${DEB_CHANGELOG:-$root/debian/changelog}" >"$doc/changelog.Debian.gz"
install -D -m 0644 "$root/debian/tsgunicorn.lintian-overrides" "$dest/usr/share/lintian/overrides/tsgunicorn"

# Modes as dpkg expects them, whatever the umask or npm left.
chmod -R u=rwX,go=rX "$dest/usr" "$dest/lib" "$dest/etc"
