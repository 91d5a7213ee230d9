#!/bin/bash
# Builds dist/tsgunicorn_VERSION_ARCH.deb, and a copy dist/tsgunicorn.deb,
# from the tree packaging/stage.sh lays out and the control data in debian/.
# Run through `npm run package`, which builds dist/js first.
#
# ARCH is the build machine's Debian architecture, or the one `--arch ARCH`
# names (`npm run package -- --arch arm64` on amd64): the bundled runtime is
# then that architecture's and the addons are cross-compiled for it
# (packaging/runtime.mjs, packaging/build-addons.mjs). amd64 and arm64.
#
# VERSION is package.json's version with Debian revision 1 (0.1.0 -> 0.1.0-1).
# DEB_VERSION overrides it, e.g. to build a newer package for an upgrade test:
# the changelog then gets an entry for that version on top of debian/changelog,
# and the packaged program reports its upstream part (0.2.0-1 -> 0.2.0).
# DEB_OUTDIR puts both .deb files in another directory than dist/, which
# holds the build machine's (the one the e2e tests install); a package for
# another architecture goes to dist/ARCH/ by default.
#
# Needs dpkg-dev (dpkg-shlibdeps, dpkg-gencontrol), binutils (strip) and, for
# the addons, g++, make, python3 (node-gyp), pkg-config and libsystemd-dev, and
# for another ARCH the cross compilers and ARCH's libsystemd-dev and libstdc++6
# (multiarch): it installs the missing ones as root, or fails with one line
# naming them.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# The build machine's runtime (npm ci's), which runs the build's scripts.
runtime=$root/node_modules/.bin/node
arch=
while [ $# -gt 0 ]; do
  case $1 in
    --arch) arch=${2:?--arch needs a Debian architecture, e.g. --arch arm64}; shift 2 ;;
    --arch=*) arch=${1#--arch=}; shift ;;
    *) echo "build-deb.sh: unknown argument $1 (usage: npm run package [-- --arch ARCH])" >&2; exit 2 ;;
  esac
done
"$runtime" packaging/debian-deps.mjs build-deps $arch
# DEB_HOST_ARCH, DEB_HOST_GNU_TYPE... as dpkg-buildpackage -a sets them: the
# dpkg tools below, stage.sh and build-addons.mjs build for that architecture.
eval "$(dpkg-architecture ${arch:+-a"$arch"} -s 2>/dev/null)"
out=dist
[ "$DEB_HOST_ARCH" = "$DEB_BUILD_ARCH" ] || out=dist/$DEB_HOST_ARCH
out=${DEB_OUTDIR:-$out}
upstream=$("$runtime" -p 'require("./package.json").version')
version=${DEB_VERSION:-$upstream-1}
# Without epoch and Debian revision.
program_version=${version#*:}
program_version=${program_version%-*}

build=$(mktemp -d)
trap 'rm -rf "$build" "$out"/.tsgunicorn.deb.$$*' EXIT
pkg=$build/root

changelog=debian/changelog
if [ "$version" != "$(dpkg-parsechangelog -l debian/changelog -S Version)" ]; then
  changelog=$build/changelog
  {
    printf 'tsgunicorn (%s) %s; urgency=medium\n\n  * Built as version %s (DEB_VERSION).\n\n -- %s  %s\n\n' \
      "$version" "$(dpkg-parsechangelog -l debian/changelog -S Distribution)" "$version" \
      "$(dpkg-parsechangelog -l debian/changelog -S Maintainer)" "$(date -R)"
    cat debian/changelog
  } >"$changelog"
fi

DEB_CHANGELOG=$changelog PROGRAM_VERSION=$program_version bash packaging/stage.sh "$pkg"

install -d -m 0755 "$pkg/DEBIAN"
install -m 0755 debian/postinst debian/prerm debian/postrm "$pkg/DEBIAN/"
# The admin may edit the logrotate config: dpkg keeps their changes on upgrade.
(cd "$pkg" && find etc -type f | sed 's#^#/#') >"$pkg/DEBIAN/conffiles"
chmod 0644 "$pkg/DEBIAN/conffiles"
# For dpkg --verify and debsums (conffiles have their sums in dpkg's status).
(cd "$pkg" && find usr lib -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum) >"$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/md5sums"
# Depends: the shared libraries the addons (${shlibs:Depends} in
# debian/control) and the runtime (${runtime:Depends}) link against, at the
# versions their symbols need. No warnings: the addons take V8's symbols from
# the runtime that loads them (they are plugins), and the runtime's own links
# are upstream's choice.
dpkg-shlibdeps --warnings=0 -T"$build/substvars" \
  -e"$pkg/usr/lib/tsgunicorn/node_modules/sd-notify/build/Release/notify.node" \
  -e"$pkg/usr/lib/tsgunicorn/node_modules/systemd-journald/build/Release/journal_send.node" \
  -e"$pkg/usr/lib/tsgunicorn/native/reaper/build/Release/reaper.node" \
  -e"$pkg/usr/lib/tsgunicorn/native/watchdog/build/Release/watchdog.node"
# Debian's libc6 symbols file (since 2.34) gives sysconf a minimum of 2.34 for
# every caller, because glibc 2.34's headers turned SIGSTKSZ into a
# sysconf(_SC_SIGSTKSZ) call older glibc cannot answer. That concerns only
# code compiled against glibc >= 2.34, and an executable linked against such a
# glibc references __libc_start_main@GLIBC_2.34. Upstream's runtime is linked
# against an older one (its newest glibc symbol version is GLIBC_2.28 for
# Node.js 24), so for it libc6's minimum is the newest version it references.
runtime_bin=$pkg/usr/lib/tsgunicorn/bin/node
runtime_glibc=$("$DEB_HOST_GNU_TYPE-objdump" -T "$runtime_bin" | grep -oE '\(GLIBC_[0-9.]+\)' | tr -d '()' | sed 's/^GLIBC_//' | sort -uV | tail -n1)
runtime_shlibs=/dev/null
if dpkg --compare-versions "$runtime_glibc" lt 2.34; then
  runtime_shlibs=$build/runtime.shlibs
  echo "libc 6 libc6 (>= $runtime_glibc)" >"$runtime_shlibs"
fi
dpkg-shlibdeps --warnings=0 -T"$build/substvars" -pruntime -L"$runtime_shlibs" -e"$runtime_bin"
dpkg-gencontrol -ptsgunicorn -v"$version" -l"$changelog" -T"$build/substvars" -P"$pkg" -f"$build/files"

# Written aside and renamed into place, so $out never holds a partial .deb.
mkdir -p "$out"
deb=$out/tsgunicorn_${version}_${DEB_HOST_ARCH}.deb
dpkg-deb --root-owner-group --build "$pkg" "$out/.tsgunicorn.deb.$$"
cp "$out/.tsgunicorn.deb.$$" "$out/.tsgunicorn.deb.$$.copy"
mv -f "$out/.tsgunicorn.deb.$$" "$deb"
mv -f "$out/.tsgunicorn.deb.$$.copy" "$out/tsgunicorn.deb"
echo "build-deb.sh: $deb ($(du -h "$deb" | cut -f1))"
