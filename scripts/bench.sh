#!/usr/bin/env bash
# Prints the performance figures of the toolkit (see README "Performance"):
#   batch issuance vs raw crypto, a 1,000,000-entry CRL, the ledger query over 1,000,000 leaves,
#   PKCS#11 signer overhead on SoftHSM2, `issuer --help` start-up time, and etcd's connection
#   rate against the size of its CRL file (scripts/bench-etcd-crl.sh, a real etcd member).
# Usage: scripts/bench.sh          (BENCH_DIR=... to write elsewhere than target/bench)
#        scripts/bench.sh etcd-crl (only the etcd CRL step)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if [ "${1:-}" = etcd-crl ]; then exec scripts/bench-etcd-crl.sh; fi
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
cargo build --release --locked --quiet -p issuer
ISSUER="$(scripts/cargo-target-dir.sh)/release/issuer"
run_bench() { cargo bench --locked --quiet -p "$1" --bench "$2" 2>/dev/null | grep -vE '^(running 0 tests|test result|$)'; }
run_bench pki-core issuance
run_bench pki-core crl
run_bench pki-core ledger
run_bench root-ca pkcs11

CA=${BENCH_DIR:-target/bench}/ledger/ca
time_ms() { # median wall time in ms of a command, over N runs
  local n=$1; shift; local t=()
  for _ in $(seq "$n"); do
    local s=$(date +%s%N); "$@" >/dev/null; local e=$(date +%s%N); t+=($(( (e - s) / 1000 )))
  done
  printf '%s\n' "${t[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}'
}
echo "issuer list --expiring-within 30d over the 1,000,000-leaf ledger (CLI, median of 5): $(time_ms 5 "$ISSUER" list --ca "$CA" --expiring-within 30d) ms"
echo "issuer list --expiring-within 30d --json (CLI, median of 5): $(time_ms 5 "$ISSUER" list --ca "$CA" --expiring-within 30d --json) ms"
echo "issuer --help start-up (median of 50): $(time_ms 50 "$ISSUER" --help) ms"
scripts/bench-etcd-crl.sh
