#!/usr/bin/env bash
# Installs the named Debian packages that are missing (apt-get, as root or with sudo), and
# checks each one is installed afterwards. Instant when all are installed.
#   bash scripts/apt-install.sh WHO PACKAGE...    (WHO prefixes the messages)
set -euo pipefail
who=$1
shift

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for p in "$@"; do
  installed "$p" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

command -v apt-get >/dev/null || {
  echo "$who: missing ${missing[*]}, and this machine has no apt-get: install them with its package manager" >&2
  exit 1
}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
echo "$who: installing ${missing[*]}"
as_root apt-get update -qq || { echo "$who: apt-get update failed" >&2; exit 1; }
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
  { echo "$who: apt-get install ${missing[*]} failed" >&2; exit 1; }
for p in "${missing[@]}"; do
  installed "$p" || { echo "$who: $p is still not installed after apt-get install" >&2; exit 1; }
done
