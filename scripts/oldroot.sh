#!/usr/bin/env bash
# oldroot.sh: prints the path of a Debian 11 (bullseye: glibc 2.31, libcurl
# 7.74) root made with debootstrap, holding only what a user of a prebuilt
# archive has: libcurl4, lua5.4 and luajit (no compiler, no headers).
# make dist-test runs the Linux archives inside it (chroot).
#
# The root is cached outside the clone, in $BASETEN_CACHE (default
# /var/cache/baseten) under a name made of the suite and the package list,
# so a fresh clone on the same machine reuses it; the first run takes about
# 2-4 minutes (downloads from the apt mirror this machine uses). Needs root.
set -euo pipefail
SUITE=bullseye
PKGS=libcurl4,luajit,lua5.4,ca-certificates
CACHE=${BASETEN_CACHE:-/var/cache/baseten}
KEY=$(printf '%s %s' "$SUITE" "$PKGS" | sha256sum | cut -c1-12)
ROOTDIR=$CACHE/root-$SUITE-$KEY
if [ -f "$ROOTDIR/.complete" ]; then echo "$ROOTDIR"; exit 0; fi
[ "$(id -u)" -eq 0 ] || { echo "oldroot: debootstrap needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || bash "$(dirname "$0")/deps.sh" oldroot
# the mirror the machine's own apt sources name (deb822 or one-line form)
MIRROR=$(sed -n 's/^URIs: *\([^ ]*debian\)\/*$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
[ -n "$MIRROR" ] || MIRROR=$(sed -n 's/^deb \(\[[^]]*\] \)\?\([^ ]*debian\)\/* .*/\2/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
echo "oldroot: making a Debian 11 root in $ROOTDIR from $MIRROR (about 2-4 minutes, once per machine)" >&2
rm -rf "$ROOTDIR.tmp"
mkdir -p "$CACHE"
t0=$SECONDS
debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$ROOTDIR.tmp" "$MIRROR" >"$CACHE/oldroot.log" 2>&1 || {
  tail -n 30 "$CACHE/oldroot.log" >&2; echo "oldroot: debootstrap failed (log: $CACHE/oldroot.log)" >&2; exit 1; }
rm -rf "$ROOTDIR.tmp"/var/cache/apt/archives/*.deb
touch "$ROOTDIR.tmp/.complete"
rm -rf "$ROOTDIR"
mv "$ROOTDIR.tmp" "$ROOTDIR"
echo "oldroot: made in $((SECONDS - t0)) s" >&2
echo "$ROOTDIR"
