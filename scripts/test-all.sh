#!/usr/bin/env bash
# Runs every test of the workspace: installs what is missing, checks formatting and lints,
# then the unit tests and the end-to-end tests (SoftHSM2 token, real etcd cluster, openssl, age).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --bins --locked
cargo test --workspace --locked --no-fail-fast
