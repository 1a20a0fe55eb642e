#!/usr/bin/env bash
# Installs what the demo and the tests need. Idempotent: a second run takes a second.
# Every step fails loudly: a missing component is an error, never a skipped test.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# mosquitto: peer broker and device clients for tests and benchmarks; podman, runc,
# busybox-static: the agent's container runtime and the images it builds without a registry;
# clang, lld, wasi-libc, libclang-rt-dev-wasm32: C to WebAssembly (wasm32-wasi) for the wasm
# runtime's example and test modules (scripts/wasm-examples.sh; Go builds its own with
# GOOS=wasip1).
apt_pkgs=(mosquitto mosquitto-clients podman runc busybox-static clang lld wasi-libc libclang-rt-dev-wasm32)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian package starts a system mosquitto on :1883; tests start their own on free ports.
if command -v systemctl >/dev/null && systemctl is-active --quiet mosquitto 2>/dev/null; then
  as_root systemctl stop mosquitto || true
fi
for c in mosquitto mosquitto_pub mosquitto_sub clang wasm-ld; do
  command -v "$c" >/dev/null || { echo "setup: $c missing after install" >&2; exit 1; }
done

# Further steps, each in its own file (podman service, images, InfluxDB, Node-RED).
for step in scripts/setup-*.sh; do
  [ -e "$step" ] || continue
  bash "$step"
done
