#!/usr/bin/env bash
# Generates shell completions and man pages from the clap definitions of the three tools.
# Usage: scripts/gen-shell-docs.sh OUT   -> OUT/completions/{bash,zsh,fish}/..., OUT/man/*.1
set -euo pipefail
OUT=${1:?usage: scripts/gen-shell-docs.sh OUT}
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet -p root-ca -p intermediate-ca -p issuer
BIN="$(scripts/cargo-target-dir.sh)/release"
mkdir -p "$OUT/man" "$OUT/completions/bash" "$OUT/completions/zsh" "$OUT/completions/fish"
for tool in root-ca intermediate-ca issuer; do
  "$BIN/$tool" manpages "$OUT/man"
  "$BIN/$tool" completions bash > "$OUT/completions/bash/$tool"
  "$BIN/$tool" completions zsh  > "$OUT/completions/zsh/_$tool"
  "$BIN/$tool" completions fish > "$OUT/completions/fish/$tool.fish"
done
echo "man pages in $OUT/man (man -l $OUT/man/issuer.1), completions in $OUT/completions"
