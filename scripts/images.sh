#!/usr/bin/env bash
# Builds the local function images the agent maps its runtimes to, without a registry:
#   deviceless/sh       busybox rootfs (≈2 MB)
#   deviceless/python3  Debian's python3.11-minimal + stdlib + their libraries + busybox (≈60 MB)
# Idempotent: an image that exists is left alone (FORCE=1 rebuilds). The python3 warm runner
# (edgeagent/podman/runner.py) is not part of the image: the agent embeds it and mounts it
# read-only into warm python3 containers, so it always matches the agent and images built
# before it need no rebuild.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
state=${DEVICELESS_STATE:-$repo/.state}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/test/podman/containers.conf}

exists() { [ "${FORCE:-0}" != 1 ] && podman image exists "$1"; }

busybox_rootfs() { # dir: /bin/busybox plus one link per applet
  local root=$1 bb
  bb=$(command -v busybox)
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/proc" "$root/sys" "$root/dev" "$root/code"
  cp "$bb" "$root/bin/busybox"
  for applet in $("$bb" --list-full); do
    [ "$(basename "$applet")" = busybox ] && continue
    mkdir -p "$root/$(dirname "$applet")"
    [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
  done
  chmod 1777 "$root/tmp"
  echo 'root:x:0:0:root:/:/bin/sh' >"$root/etc/passwd"
  echo 'nobody:x:65534:65534:nobody:/:/bin/false' >>"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! exists deviceless/sh; then
  echo "images: building deviceless/sh"
  busybox_rootfs "$work/sh"
  tar -C "$work/sh" -cf "$work/sh.tar" .
  podman import -q --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["/bin/sh"]' \
    "$work/sh.tar" deviceless/sh >/dev/null
fi

if ! exists deviceless/python3; then
  echo "images: building deviceless/python3"
  debs=$state/images/debs
  mkdir -p "$debs"
  pkgs=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib media-types
    libc6 libbz2-1.0 libcrypt1 libdb5.3 libexpat1 libffi8 liblzma5 libncursesw6
    libnsl2 libreadline8 readline-common libsqlite3-0 libssl3 libtinfo6 libtirpc3 libuuid1
    zlib1g libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1)
  want=()
  for p in "${pkgs[@]}"; do
    compgen -G "$debs/${p}_*.deb" >/dev/null || want+=("$p")
  done
  if [ ${#want[@]} -gt 0 ]; then
    (cd "$debs" && apt-get download -q "${want[@]}" >/dev/null 2>&1) || {
      apt-get update -qq
      (cd "$debs" && apt-get download -q "${want[@]}" >/dev/null)
    }
  fi
  root=$work/py
  busybox_rootfs "$root"
  for p in "${pkgs[@]}"; do
    for deb in "$debs/${p}"_*.deb; do dpkg-deb -x "$deb" "$root"; done
  done
  ln -sf python3.11 "$root/usr/bin/python3"
  "$root/usr/bin/python3.11" -c pass 2>/dev/null || true # host sanity only; the image is checked below
  tar -C "$root" -cf "$work/py.tar" .
  podman import -q --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' --change 'CMD ["/usr/bin/python3"]' \
    "$work/py.tar" deviceless/python3 >/dev/null
  podman run --rm --network none deviceless/python3 python3 -c 'import json, ssl, sqlite3' \
    || { echo "images: deviceless/python3 does not run python3" >&2; podman rmi deviceless/python3 >/dev/null; exit 1; }
fi
