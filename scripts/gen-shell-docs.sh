#!/usr/bin/env bash
# Generates shell completions and man pages from the clap definitions of the three tools.
# Usage: scripts/gen-shell-docs.sh OUT   -> OUT/completions/{bash,zsh,fish}/..., OUT/man/*.1
set -euo pipefail
OUT=${1:?usage: scripts/gen-shell-docs.sh OUT}
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet -p root-ca -p intermediate-ca -p issuer
mkdir -p "$OUT/man" "$OUT/completions/bash" "$OUT/completions/zsh" "$OUT/completions/fish"
for tool in root-ca intermediate-ca issuer; do
  target/release/$tool manpages "$OUT/man"
  target/release/$tool completions bash > "$OUT/completions/bash/$tool"
  target/release/$tool completions zsh  > "$OUT/completions/zsh/_$tool"
  target/release/$tool completions fish > "$OUT/completions/fish/$tool.fish"
done
echo "man pages in $OUT/man (man -l $OUT/man/issuer.1), completions in $OUT/completions"
