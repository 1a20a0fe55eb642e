#!/usr/bin/env bash
# Installs and starts what `deviceless demo` needs, and nothing else (`go tool task run`):
# podman and runc (the agent's container runtime), busybox-static (the function images are
# built from it without a registry), curl (to ask the podman service whether it answers);
# then the project's podman service and the function images (scripts/setup-podman.sh).
# Idempotent: about a second when everything is there. Fails loudly: a missing piece is an
# error naming it, never a demo that starts half-way.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/apt-install.sh setup:demo podman runc busybox-static curl
for c in podman runc busybox curl; do
  command -v "$c" >/dev/null || { echo "setup:demo: $c missing after install" >&2; exit 1; }
done
bash scripts/setup-podman.sh
