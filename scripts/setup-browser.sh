#!/usr/bin/env bash
# Installs a browser for the web console's end-to-end test (test/console_test.go,
# test/console/console.mjs): Debian's Chromium from apt and playwright-core 1.65.1 from npm,
# which drives that Chromium. Never a browser playwright downloads itself: that fails here.
# playwright-core is cached outside the repository so clean clones on the same machine reuse it:
#   DEVICELESS_PLAYWRIGHT  folder holding node_modules/playwright-core
#                          (default ${XDG_CACHE_HOME:-$HOME/.cache}/deviceless/playwright-core-1.65.1)
# Nothing is started here: the test launches its own headless Chromium.
# Idempotent: instant when installed. The first install takes about a minute (Chromium).
set -euo pipefail

version=1.65.1
dir=${DEVICELESS_PLAYWRIGHT:-${XDG_CACHE_HOME:-$HOME/.cache}/deviceless/playwright-core-$version}

. "$(dirname "$0")/npm-cached.sh"

dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed" || {
  echo "setup-browser: installing chromium"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
}
[ -x /usr/bin/chromium ] || { echo "setup-browser: /usr/bin/chromium missing after install" >&2; exit 1; }
# playwright-core downloads no browser at install (only the playwright package does); the
# variable makes sure of it. It needs Node.js >= 20.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm_cached setup-browser playwright-core "$version" 20 "$dir"
echo "setup-browser: chromium $(dpkg-query -W -f='${Version}' chromium) ready"
