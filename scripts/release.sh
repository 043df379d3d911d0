#!/usr/bin/env bash
# make release VERSION=x.y.z: writes rockspecs/baseten-x.y.z-1.rockspec from
# baseten-scm-1.rockspec, pinned to the git tag vx.y.z, and checks it with
# `luarocks lint`. It refuses a version that the C core (csrc/core.c,
# BT_CORE_VERSION, which is baseten.VERSION) or CHANGELOG.md does not name.
# Then it runs `make dist` (scripts/dist.sh). It tags nothing and uploads
# nothing: it prints the commands that do and the files to attach.
set -euo pipefail
cd "$(dirname "$0")/.."
V=${VERSION:-}
[[ "$V" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "release: VERSION=x.y.z is required (got '${V}')" >&2; exit 2; }
core=$(sed -n 's/^#define BT_CORE_VERSION "\(.*\)"$/\1/p' csrc/core.c)
[ "$core" = "$V" ] || {
  echo "release: csrc/core.c says BT_CORE_VERSION \"$core\" (baseten.VERSION), not \"$V\": change it first" >&2; exit 1; }
grep -q "^## $V\( \|$\)" CHANGELOG.md || { echo "release: CHANGELOG.md has no \"## $V\" section" >&2; exit 1; }
out="rockspecs/baseten-$V-1.rockspec"
mkdir -p rockspecs
sed -e "s/^version = \"scm-1\"$/version = \"$V-1\"/" -e "s/^   branch = \"main\",$/   tag = \"v$V\",/" \
  baseten-scm-1.rockspec >"$out.tmp"
grep -q "^version = \"$V-1\"$" "$out.tmp" && grep -q "^   tag = \"v$V\",$" "$out.tmp" || {
  rm -f "$out.tmp"; echo "release: baseten-scm-1.rockspec no longer has the version/branch lines this script rewrites" >&2; exit 1; }
mv "$out.tmp" "$out"
luarocks lint "$out"
bash scripts/dist.sh
echo "release: wrote $out (luarocks lint: ok). Then: git add $out && git commit, git tag v$V,"
echo "  git push origin v$V, luarocks upload $out"
echo "release: attach these files to the GitHub release v$V (build.lua downloads them from"
echo "  https://github.com/basetenlabs/baseten-lua/releases/download/v$V/):"
(cd dist && ls -1 -- *.zip SHA256SUMS | sed 's:^:  dist/:')
