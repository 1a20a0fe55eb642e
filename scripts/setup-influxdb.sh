#!/usr/bin/env bash
# Builds InfluxDB 1.8.10 OSS (influxd) from the Go module proxy once, for the tests that run a
# real InfluxDB (package metrics and its helper metrics/influxtest). Tests start their own
# instance on free 127.0.0.1 ports with a temporary directory; nothing is started here.
# The binary is cached outside the repository so reruns on the same machine reuse it:
#   DEVICELESS_INFLUXD  path of the influxd binary
#                       (default ${XDG_CACHE_HOME:-$HOME/.cache}/deviceless/influxd-1.8.10/influxd)
# Idempotent: instant when the binary exists. A cold build takes about 5 minutes.
set -euo pipefail

version=v1.8.10
bin=${DEVICELESS_INFLUXD:-${XDG_CACHE_HOME:-$HOME/.cache}/deviceless/influxd-1.8.10/influxd}

if [ -x "$bin" ] && "$bin" version >/dev/null 2>&1; then
  exit 0
fi

command -v go >/dev/null || { echo "setup-influxdb: go is not installed" >&2; exit 1; }
dir=$(dirname "$bin")
mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "setup-influxdb: building influxd $version into $bin (about 5 minutes the first time)"
# Outside the project's module and without its GOFLAGS (build tags): influxd is built as its own
# module at the exact version; cgo off so it needs no system libraries.
(cd "$tmp" && env GOFLAGS= GOWORK=off CGO_ENABLED=0 GOBIN="$tmp" \
  go install "github.com/influxdata/influxdb/cmd/influxd@$version")
mv -f "$tmp/influxd" "$bin"
"$bin" version >/dev/null || { echo "setup-influxdb: $bin does not run" >&2; exit 1; }
echo "setup-influxdb: $("$bin" version)"
