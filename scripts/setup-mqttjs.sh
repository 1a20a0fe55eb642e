#!/usr/bin/env bash
# Installs MQTT.js (npm `mqtt`) 5.16.0 once, for the end-to-end test in which a JavaScript
# client, as users write them, talks to the engine's WebSocket listener (test/mqttjs_test.go).
# The install is cached outside the repository so clean clones on the same machine reuse it:
#   DEVICELESS_MQTTJS  folder holding node_modules/mqtt
#                      (default ${XDG_CACHE_HOME:-$HOME/.cache}/deviceless/mqttjs-5.16.0)
# Idempotent: instant when installed. The first install takes a few seconds.
set -euo pipefail

version=5.16.0
dir=${DEVICELESS_MQTTJS:-${XDG_CACHE_HOME:-$HOME/.cache}/deviceless/mqttjs-$version}

installed() {
  [ -f "$dir/node_modules/mqtt/package.json" ] &&
    [ "$(node -p "require('$dir/node_modules/mqtt/package.json').version" 2>/dev/null)" = "$version" ]
}

installed && command -v node >/dev/null && exit 0

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# MQTT.js 5 runs on Node.js >= 16 (Debian 12 ships 18).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup-mqttjs: installing nodejs and npm"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 16 ]; then
  echo "setup-mqttjs: Node.js $(node --version) is too old for mqtt $version (needs >= 16)" >&2
  exit 1
fi
installed && exit 0

echo "setup-mqttjs: installing mqtt@$version into $dir"
mkdir -p "$dir"
# A private package.json keeps npm from walking up into another project.
[ -f "$dir/package.json" ] || echo '{"name":"deviceless-mqttjs","private":true}' >"$dir/package.json"
(cd "$dir" && npm install --no-audit --no-fund --no-update-notifier --loglevel=error --save-exact "mqtt@$version")
installed || { echo "setup-mqttjs: mqtt $version missing in $dir after npm install" >&2; exit 1; }
echo "setup-mqttjs: mqtt $version ready in $dir"
