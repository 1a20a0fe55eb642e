#!/usr/bin/env bash
# Makes integrations/node-red/editor.png, the Node-RED editor with the deviceless function
# node's form open, for the package README: the end-to-end test TestNodeREDNodes (real
# engine, agent on podman, Node-RED 4.1.15, headless Chromium) takes it while it checks the
# editor. Needs what `go tool task setup` installs.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS='-buildvcs=false -tags=remote,containers_image_openpgp,exclude_graphdriver_btrfs,exclude_graphdriver_devicemapper'
export DEVICELESS_STATE=${DEVICELESS_STATE:-$PWD/.state}
DEVICELESS_NODERED_SCREENSHOT=$PWD/integrations/node-red/editor.png \
  go test -count=1 -run '^TestNodeREDNodes$' -v ./test/ | grep -E 'screenshot|^(--- |ok|FAIL)'
echo "wrote integrations/node-red/editor.png"
