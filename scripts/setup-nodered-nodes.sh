#!/usr/bin/env bash
# Installs the development dependencies of the Deviceless Node-RED nodes
# (integrations/node-red: node-red-node-test-helper 0.3.6 and what it needs, pinned by its
# package-lock.json) for their unit tests (`npm test` there, run by `go tool task test`).
# They run in the Node-RED 4.1.15 that scripts/setup-nodered.sh installs (DEVICELESS_NODERED),
# so Node-RED itself is not installed again here.
# Idempotent: instant when installed. The first install takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/../integrations/node-red"

version=0.3.6
installed() {
  [ "$(node -p "require('./node_modules/node-red-node-test-helper/package.json').version" 2>/dev/null)" = "$version" ] &&
    [ node_modules/.package-lock.json -nt package-lock.json ]
}
command -v npm >/dev/null || { echo "setup-nodered-nodes: npm missing (scripts/setup-nodered.sh installs it)" >&2; exit 1; }
installed && exit 0

echo "setup-nodered-nodes: npm ci in integrations/node-red"
npm ci --no-audit --no-fund --no-update-notifier --loglevel=error
installed || { echo "setup-nodered-nodes: node-red-node-test-helper $version missing after npm ci" >&2; exit 1; }
echo "setup-nodered-nodes: ready"
