#!/usr/bin/env bash
# tools/vault.sh OUT: put the pinned Vault dev server (test/vaultserver) at
# OUT. The build is kept once per machine, outside any clone, keyed by the
# pin (test/vaultserver/go.mod and go.sum), so every clone, `make test` and
# .ci/run share it: only the first run on a machine builds Vault.
#
# JIT_SSH_VAULT_CACHE overrides the cache directory
# (default ${XDG_CACHE_HOME:-$HOME/.cache}/jit-ssh).
set -euo pipefail
out=${1:?usage: tools/vault.sh OUT}
root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/test/vaultserver
GO=${GO:-go}

# The pin is every file of the module and the Go toolchain that builds it.
key=$( { (cd "$src" && find . -type f | LC_ALL=C sort | xargs sha256sum); "$GO" env GOVERSION GOOS GOARCH; } | sha256sum | cut -c1-16)
dir=${JIT_SSH_VAULT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jit-ssh}
cached=$dir/vault-$key

if [ ! -x "$cached" ]; then
  echo "Building the pinned Vault server once for this machine (into $cached)."
  echo "The tests run a real Vault, built from its Go module at the version test/vaultserver pins;"
  echo "it is a large program, so this first build takes several minutes (20 to 30 on 2 busy cores)."
  echo "Later runs, in this clone or any other on this machine, reuse it."
  mkdir -p "$dir"
  start=$(date +%s)
  tmp=$(mktemp "$dir/.vault-$key.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  (cd "$src" && "$GO" build -trimpath -ldflags '-s -w' -o "$tmp" .)
  chmod 0755 "$tmp"
  mv -f "$tmp" "$cached"
  echo "Vault built in $(( $(date +%s) - start )) s."
fi

mkdir -p "$(dirname "$out")"
# A hard link costs no space; a copy where the cache is on another file system.
ln -f "$cached" "$out" 2>/dev/null || cp -f "$cached" "$out"
