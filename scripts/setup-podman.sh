#!/usr/bin/env bash
# Starts the project-owned podman API service the edge agent and its tests use, and builds the
# local function images (scripts/images.sh). Nothing under /etc is touched: the service runs
# with test/podman/containers.conf (runc, ulimits below the host's hard limits).
# Idempotent and fast when the service already answers and the images exist.
#   DEVICELESS_STATE          state folder (default <repo>/.state)
#   DEVICELESS_PODMAN_SOCKET  socket path (default $DEVICELESS_STATE/podman/podman.sock)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
state=${DEVICELESS_STATE:-$repo/.state}
sock=${DEVICELESS_PODMAN_SOCKET:-$state/podman/podman.sock}
sock=$(realpath -m "$sock") # the service starts in the socket's folder
export CONTAINERS_CONF=$repo/test/podman/containers.conf

command -v podman >/dev/null || { echo "setup-podman: podman is not installed" >&2; exit 1; }
command -v runc >/dev/null || { echo "setup-podman: runc is not installed" >&2; exit 1; }

answering() { curl -sf --max-time 2 --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; }

if ! answering; then
  mkdir -p "$(dirname "$sock")"
  log=$(dirname "$sock")/service.log
  rm -f "$sock"
  echo "setup-podman: starting podman service on $sock"
  # Started in its own folder: conmon writes an "oom" file into the service's working
  # directory when a container is OOM-killed.
  (cd "$(dirname "$sock")" && exec setsid nohup podman system service --time=0 "unix://$sock" >"$log" 2>&1 </dev/null) &
  echo $! >"$(dirname "$sock")/service.pid"
  for _ in $(seq 100); do
    answering && break
    sleep 0.1
  done
  answering || { echo "setup-podman: podman service did not answer on $sock; see $log" >&2; tail -20 "$log" >&2; exit 1; }
fi

bash scripts/images.sh
