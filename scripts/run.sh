#!/usr/bin/env bash
# What `go tool task run` starts once setup and build are done: the closed-loop demo.
set -euo pipefail
cd "$(dirname "$0")/.."
exec ./bin/deviceless demo "$@"
