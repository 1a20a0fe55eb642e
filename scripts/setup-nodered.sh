#!/usr/bin/env bash
# Installs Node-RED 4.1.15 from npm once, for the end-to-end test that runs the example flow
# (test/nodered_test.go, examples/node-red). Nothing is started here: the test starts its own
# headless instance on a free 127.0.0.1 port with a temporary user directory.
# Node-RED 5 needs Node >= 22.9; Node 20 (Debian 12) runs the 4.1 line.
# The install is cached outside the repository so clean clones on the same machine reuse it:
#   DEVICELESS_NODERED  folder holding node_modules/node-red
#                       (default ${XDG_CACHE_HOME:-$HOME/.cache}/deviceless/node-red-4.1.15)
# Idempotent: instant when installed. The first install takes about 70 seconds.
set -euo pipefail

version=4.1.15
dir=${DEVICELESS_NODERED:-${XDG_CACHE_HOME:-$HOME/.cache}/deviceless/node-red-$version}

installed() {
  [ -f "$dir/node_modules/node-red/red.js" ] &&
    [ "$(node -p "require('$dir/node_modules/node-red/package.json').version" 2>/dev/null)" = "$version" ]
}

installed && command -v node >/dev/null && exit 0

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# Node-RED 4.1 runs on Node.js 18 to 22 (Debian 12 ships 18; 5.x would need >= 22.9).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup-nodered: installing nodejs and npm"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
  echo "setup-nodered: Node.js $(node --version) is too old for Node-RED $version (needs >= 18)" >&2
  exit 1
fi
installed && exit 0

echo "setup-nodered: installing node-red@$version into $dir (about 70 seconds the first time)"
mkdir -p "$dir"
# A private package.json keeps npm from walking up into another project.
[ -f "$dir/package.json" ] || echo '{"name":"deviceless-node-red","private":true}' >"$dir/package.json"
(cd "$dir" && npm install --no-audit --no-fund --no-update-notifier --loglevel=error "node-red@$version")
installed || { echo "setup-nodered: node-red $version missing in $dir after npm install" >&2; exit 1; }
echo "setup-nodered: node-red $version ready in $dir"
