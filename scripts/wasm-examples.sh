#!/usr/bin/env bash
# Builds the WebAssembly example functions (WASI preview 1) from their sources:
#   go-echo.wasm  examples/wasm/go-echo  (Go, GOOS=wasip1 GOARCH=wasm, ≈ 3 MB)
#   c-echo.wasm   examples/wasm/c-echo   (C, clang --target=wasm32-wasi + wasi-libc, ≈ 30 KB)
#   c-fan.wasm    examples/wasm/c-fan    (C, the closed loop's compute step, ≈ 20 KB)
# into the folder given as the first argument (default $DEVICELESS_STATE/wasm/examples, with
# DEVICELESS_STATE defaulting to <repo>/.state). Prints each module's path and digest.
# Needs go, and clang, lld, wasi-libc and libclang-rt-14-dev-wasm32 (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
state=${DEVICELESS_STATE:-$repo/.state}
out=${1:-$state/wasm/examples}
mkdir -p "$out"
out=$(cd "$out" && pwd)

for c in go clang wasm-ld; do
  command -v "$c" >/dev/null || { echo "wasm-examples: $c is not installed (run scripts/setup.sh)" >&2; exit 1; }
done

# The project's GOFLAGS carry the podman build tags; a wasip1 build needs none of them.
GOFLAGS= GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 go build -trimpath -o "$out/go-echo.wasm" ./examples/wasm/go-echo
clang --target=wasm32-wasi -O2 -Wall -Werror -Wl,--strip-all -o "$out/c-echo.wasm" examples/wasm/c-echo/echo.c
clang --target=wasm32-wasi -O2 -Wall -Werror -Wl,--strip-all -o "$out/c-fan.wasm" examples/wasm/c-fan/fan.c

for m in go-echo c-echo c-fan; do
  printf '%s sha256:%s\n' "$out/$m.wasm" "$(sha256sum "$out/$m.wasm" | cut -d' ' -f1)"
done
