#!/usr/bin/env bash
# Installs MQTT.js (npm `mqtt`) 5.16.0 once, for the end-to-end test in which a JavaScript
# client, as users write them, talks to the engine's WebSocket listener (test/mqttjs_test.go).
# The install is cached outside the repository so clean clones on the same machine reuse it:
#   DEVICELESS_MQTTJS  folder holding node_modules/mqtt
#                      (default ${XDG_CACHE_HOME:-$HOME/.cache}/deviceless/mqttjs-5.16.0)
# Idempotent: instant when installed. The first install takes a few seconds.
set -euo pipefail
. "$(dirname "$0")/npm-cached.sh"

version=5.16.0
# MQTT.js 5 runs on Node.js >= 16 (Debian 12 ships 18).
npm_cached setup-mqttjs mqtt "$version" 16 "${DEVICELESS_MQTTJS:-${XDG_CACHE_HOME:-$HOME/.cache}/deviceless/mqttjs-$version}"
