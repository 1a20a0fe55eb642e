#!/usr/bin/env bash
# Installs Node-RED 4.1.15 from npm once, for the end-to-end test that runs the example flow
# (test/nodered_test.go, examples/node-red). Nothing is started here: the test starts its own
# headless instance on a free 127.0.0.1 port with a temporary user directory.
# The install is cached outside the repository so clean clones on the same machine reuse it:
#   DEVICELESS_NODERED  folder holding node_modules/node-red
#                       (default ${XDG_CACHE_HOME:-$HOME/.cache}/deviceless/node-red-4.1.15)
# Idempotent: instant when installed. The first install takes about 70 seconds.
set -euo pipefail
. "$(dirname "$0")/npm-cached.sh"

version=4.1.15
# Node-RED 4.1 runs on Node.js 18 to 22 (Debian 12 ships 18; 5.x would need >= 22.9).
npm_cached setup-nodered node-red "$version" 18 "${DEVICELESS_NODERED:-${XDG_CACHE_HOME:-$HOME/.cache}/deviceless/node-red-$version}"
