#!/usr/bin/env bash
# Installs what the tests need (`go tool task test`): what the demo needs
# (scripts/setup-demo.sh), then mosquitto and its clients (peer broker and device clients),
# InfluxDB 1.8.10 built from the module proxy (scripts/setup-influxdb.sh, about 5 minutes
# the first time) and Node-RED 4.1.15 from npm (scripts/setup-nodered.sh, about 70 s).
# Idempotent: a second run takes a second. Every step fails loudly: a missing component is
# an error, never a skipped test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-demo.sh

# mosquitto: peer broker and device clients for tests and benchmarks; clang, lld, wasi-libc,
# libclang-rt-dev-wasm32: C to WebAssembly (wasm32-wasi) for the wasm runtime's example and
# test modules (scripts/wasm-examples.sh; Go builds its own with GOOS=wasip1).
bash scripts/apt-install.sh setup mosquitto mosquitto-clients clang lld wasi-libc libclang-rt-dev-wasm32
# The Debian package starts a system mosquitto on :1883; tests start their own on free ports.
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if command -v systemctl >/dev/null && systemctl is-active --quiet mosquitto 2>/dev/null; then
  as_root systemctl stop mosquitto || true
fi
for c in mosquitto mosquitto_pub mosquitto_sub clang wasm-ld; do
  command -v "$c" >/dev/null || { echo "setup: $c missing after install" >&2; exit 1; }
done

bash scripts/setup-influxdb.sh
bash scripts/setup-nodered.sh
bash scripts/setup-nodered-nodes.sh
bash scripts/setup-mqttjs.sh
bash scripts/setup-browser.sh
