#!/usr/bin/env bash
# `make love-demo`: the example game (examples/love) against the bundled
# local OpenAI-compatible server (spec/support/server.py), as `make demo`
# does for the terminal: no key needed. With BASETEN_API_KEY set it talks to
# Baseten instead. Extra LÖVE arguments: LOVE_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v love >/dev/null || bash scripts/deps.sh hosts
if [ -n "${BASETEN_API_KEY:-}" ]; then exec love examples/love ${LOVE_ARGS:-}; fi
tmp=$(mktemp -d)
python3 spec/support/server.py --port 0 --port-file "$tmp/port" --parent-pid $$ --api-key local-demo-key \
  >"$tmp/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 1 500); do [ -s "$tmp/port" ] && break; sleep 0.02; done
port=$(cat "$tmp/port" 2>/dev/null) || { cat "$tmp/server.log" >&2; exit 1; }
echo "love-demo: BASETEN_API_KEY is not set: the game talks to the bundled local server at http://127.0.0.1:$port/v1"
BASETEN_BASE_URL=http://127.0.0.1:$port/v1 BASETEN_API_KEY=local-demo-key love examples/love ${LOVE_ARGS:-}
