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

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

pkgs=()
dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed" || pkgs+=(chromium)
# Node.js may come from elsewhere than Debian (playwright-core needs >= 20).
command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "setup-browser: installing ${pkgs[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
[ -x /usr/bin/chromium ] || { echo "setup-browser: /usr/bin/chromium missing after install" >&2; exit 1; }
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "setup-browser: Node.js $(node --version) is too old for playwright-core $version (needs >= 20)" >&2
  exit 1
fi

installed() {
  [ "$(node -p "require('$dir/node_modules/playwright-core/package.json').version" 2>/dev/null)" = "$version" ]
}
installed && exit 0

echo "setup-browser: installing playwright-core@$version into $dir"
mkdir -p "$dir"
# A private package.json keeps npm from walking up into another project.
[ -f "$dir/package.json" ] || echo '{"name":"deviceless-playwright","private":true}' >"$dir/package.json"
# playwright-core downloads no browser at install (only the playwright package does); the
# variable makes sure of it.
(cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --no-update-notifier \
  --loglevel=error --save-exact "playwright-core@$version")
installed || { echo "setup-browser: playwright-core $version missing in $dir after npm install" >&2; exit 1; }
echo "setup-browser: chromium $(dpkg-query -W -f='${Version}' chromium) and playwright-core $version ready in $dir"
