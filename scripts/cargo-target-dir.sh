#!/usr/bin/env bash
# Prints the folder cargo builds this workspace into, as cargo itself reports it: it honours
# CARGO_TARGET_DIR (relative or absolute) and build.target-dir in any .cargo/config.toml, so
# scripts never guess `target/`.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
cargo metadata --format-version 1 --no-deps --locked --manifest-path "$HERE/Cargo.toml" |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'
