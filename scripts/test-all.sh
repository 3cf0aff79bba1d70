#!/usr/bin/env bash
# Runs every test of the workspace in two tiers, the fast one first:
#   fast: formatting, lints, unit tests of every crate, pki-core's own integration tests, doc
#         tests, and the CLI case files of each binary (tests/cmd/*.toml: help, usage and input
#         errors, read-only commands on a checked-in fixture CA; no token, no etcd, no network);
#   slow: the end-to-end suites (SoftHSM2 token, real etcd 3.4 and 3.5 clusters, openssl, age).
# Installs what is missing first. Prints how long each tier took.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
t0=$SECONDS
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked --no-fail-fast --lib --bins
cargo test -p pki-core --locked --no-fail-fast --test crl_expiry
cargo test --workspace --locked --doc
cargo test -p root-ca -p intermediate-ca -p issuer -p pki-agent --locked --no-fail-fast --test cli
echo "test-all: fast tier passed in $((SECONDS - t0)) s" >&2
t1=$SECONDS
cargo build --workspace --bins --locked
cargo test -p pki-core --locked --test token_labels --test context_login
cargo test -p e2e-tests --locked --no-fail-fast --test e2e
echo "test-all: slow tier passed in $((SECONDS - t1)) s (both tiers: $((SECONDS - t0)) s)" >&2
