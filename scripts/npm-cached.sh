# Sourced by the setup scripts that install an npm package for the tests outside the
# repository (so clean clones on the same machine reuse it).
#
#   npm_cached TAG PACKAGE VERSION MIN_NODE DIR
#
# makes sure node and npm are there (apt) and Node.js is at least MIN_NODE, then installs
# PACKAGE@VERSION into DIR, a private package folder, unless that version is there already.
# TAG prefixes the messages. Instant when installed.

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

npm_cached() {
  local tag=$1 pkg=$2 version=$3 min=$4 dir=$5
  npm_cached_ok() {
    [ "$(node -p "require('$dir/node_modules/$pkg/package.json').version" 2>/dev/null)" = "$version" ]
  }
  command -v node >/dev/null && npm_cached_ok && return 0
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "$tag: installing nodejs and npm"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt "$min" ]; then
    echo "$tag: Node.js $(node --version) is too old for $pkg $version (needs >= $min)" >&2
    return 1
  fi
  npm_cached_ok && return 0
  echo "$tag: installing $pkg@$version into $dir"
  mkdir -p "$dir"
  # A private package.json keeps npm from walking up into another project.
  [ -f "$dir/package.json" ] || echo "{\"name\":\"deviceless-$tag\",\"private\":true}" >"$dir/package.json"
  (cd "$dir" && npm install --no-audit --no-fund --no-update-notifier --loglevel=error --save-exact "$pkg@$version")
  npm_cached_ok || { echo "$tag: $pkg $version missing in $dir after npm install" >&2; return 1; }
  echo "$tag: $pkg $version ready in $dir"
}
