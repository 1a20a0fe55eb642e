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

command -v node >/dev/null || { echo "setup-nodered: node is not installed (Node-RED $version needs Node.js >= 18)" >&2; exit 1; }
command -v npm >/dev/null || { echo "setup-nodered: npm is not installed" >&2; exit 1; }
installed && exit 0

echo "setup-nodered: installing node-red@$version into $dir (about 70 seconds the first time)"
mkdir -p "$dir"
# A private package.json keeps npm from walking up into another project.
[ -f "$dir/package.json" ] || echo '{"name":"deviceless-node-red","private":true}' >"$dir/package.json"
(cd "$dir" && npm install --no-audit --no-fund --no-update-notifier --loglevel=error "node-red@$version")
installed || { echo "setup-nodered: node-red $version missing in $dir after npm install" >&2; exit 1; }
echo "setup-nodered: node-red $version ready in $dir"
