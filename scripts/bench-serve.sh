#!/usr/bin/env bash
# Load test of `issuer serve` (README "Performance"): AGENTS simulated agents renew over mutual
# TLS on loopback, with a P-256 and with a P-384 intermediate, against `cfssl serve`
# /api/v1/cfssl/newcert on the same machine in the same run as the anchor; then the wall time
# of one CLI leaf, `issuer issue` against `cfssl gencert`.
#
# For each curve, in a new folder under ${TMPDIR:-/tmp} (a disk, so the ledger's fsyncs are
# real): an OpenSSL root and intermediate (scripts/openssl-reference-ca.sh), imported with
# `intermediate-ca import`; the service's own leaf (`issuer issue server`); AGENTS client leaves
# from one `issuer batch`; `issuer serve` (release build) with the rate limits out of the way;
# then the load generator (pki-service/benches/serve_load.rs) for DURATION seconds at each
# concurrency. cfssl serves the same intermediate, driven by the same load generator over
# plain HTTP (cfssl makes each key itself), sequentially and at each concurrency.
#
# Then the server ledger (after the CLI figures, which measure the SQLite ledger): the first
# curve's folder is moved to a throwaway PostgreSQL
# (`issuer ledger migrate`; initdb/pg_ctl on a loopback port, as the `postgres` user when run as
# root) and the same load runs against one and against two `issuer serve` instances on that
# database, the agents spread over both (skipped when no PostgreSQL server binaries are
# installed: apt postgresql).
#
# Usage: scripts/bench-serve.sh
# Environment: AGENTS (1000), CONCURRENCY ("16 64"), DURATION (10 s per run), CURVES
# ("P-256 P-384"), POSTGRES (1; 0 skips the server-ledger runs), KEEP=1 keeps the folders. Installs cfssl (Debian golang-cfssl) and hyperfine
# with apt when missing; without them those rows say so. Not run by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
AGENTS=${AGENTS:-1000}
CONCURRENCY=${CONCURRENCY:-16 64}
DURATION=${DURATION:-10}
CURVES=${CURVES:-P-256 P-384}

need=()
command -v openssl >/dev/null || need+=(openssl)
command -v cfssl >/dev/null || need+=(golang-cfssl)
command -v hyperfine >/dev/null || need+=(hyperfine)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"; } >/dev/null 2>&1 ||
    echo "could not install ${need[*]}; the rows that need them are left out" >&2
fi
HAVE_CFSSL=0; command -v cfssl >/dev/null && HAVE_CFSSL=1
HAVE_HYPERFINE=0; command -v hyperfine >/dev/null && HAVE_HYPERFINE=1

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
cargo build --release --locked --quiet -p issuer -p intermediate-ca
cargo bench --locked --quiet --no-run -p pki-service --bench serve_load 2>/dev/null
TARGET=$(scripts/cargo-target-dir.sh)
ISSUER="$TARGET/release/issuer"
IA="$TARGET/release/intermediate-ca"
# The load generator: its table row on stdout, its summary and first error in $WORK/load.log.
load() { cargo bench --locked --quiet -p pki-service --bench serve_load -- "$@" 2>>"$WORK/load.log"; }
# CPU ticks (user + system) a process has used; the kernel's tick rate.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)


WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-serve.XXXXXX")
echo
echo "## The crypto floor of one renewal (pki-service/benches/renewal_floor.rs, in one process)"
echo
FLOOR_TABLE=$(cargo bench --locked --quiet -p pki-service --bench renewal_floor -- --iterations 200 2>>"$WORK/load.log")
echo "$FLOOR_TABLE"
floor_us() { echo "$FLOOR_TABLE" | awk -F'|' -v c="$1" '$2 ~ c { gsub(/ /, "", $6); print $6 }'; }
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# setup DIR CURVE: reference PKI, CA folder, service leaf, AGENTS client leaves.
setup() {
  local d=$1 curve=$2
  mkdir -p "$d"
  INTERMEDIATE_CURVE=$curve NODES=1 CLIENTS=unused bash scripts/openssl-reference-ca.sh "$d/ref" >/dev/null
  "$IA" new-identity "$d/identity.txt" >/dev/null 2>&1
  "$IA" import --cert "$d/ref/intermediate.crt" --key "$d/ref/ca-private/intermediate.key" \
    --dir "$d/ca" --identity "$d/identity.txt" >/dev/null
  PKI_AGE_IDENTITY="$d/identity.txt" "$ISSUER" issue server --ca "$d/ca" --out "$d/svc" \
    --cn pki-service --ip 127.0.0.1 >/dev/null
  for i in $(seq -w 1 "$AGENTS"); do
    printf '[[leaf]]\nprofile = "client"\ncn = "agent-%s"\n\n' "$i"
  done >"$d/agents.toml"
  PKI_AGE_IDENTITY="$d/identity.txt" "$ISSUER" batch --ca "$d/ca" --out "$d/agents" "$d/agents.toml" >/dev/null
}

# wait_for FILE TEXT PID: until FILE holds TEXT (10 s at most, and only while PID runs).
wait_for() {
  for _ in $(seq 100); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || break
    sleep 0.1
  done
  echo "gave up waiting for '$2' in $1:" >&2
  cat "$1" >&2
  return 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# cfssl_up DIR: cfssl serve on DIR's intermediate, at 127.0.0.1:$CPORT, pid $CPID.
cfssl_up() {
  local d=$1
  openssl ec -in "$d/ref/ca-private/intermediate.key" -out "$d/cfssl-ca-key.pem" 2>/dev/null
  cat >"$d/cfssl.json" <<'EOF'
{"signing": {"default": {"expiry": "2160h", "usages": ["digital signature", "client auth"]}}}
EOF
  CPORT=$(free_port)
  cfssl serve -address 127.0.0.1 -port "$CPORT" -ca "$d/ref/intermediate.crt" \
    -ca-key "$d/cfssl-ca-key.pem" -config "$d/cfssl.json" >"$d/cfssl.log" 2>&1 &
  CPID=$!
  PIDS+=($CPID)
  wait_for "$d/cfssl.log" "Now listening" $CPID
}

echo
echo "## Renewals over mutual TLS: $AGENTS agents, ${DURATION} s per run, a new connection and a full TLS 1.3 handshake per renewal"
echo
header=--header
for curve in $CURVES; do
  d="$WORK/$curve"
  setup "$d" "$curve"
  PKI_AGE_IDENTITY="$d/identity.txt" "$ISSUER" serve --ca "$d/ca" --listen 127.0.0.1:0 \
    --tls-cert "$d/svc/server.crt" --tls-key "$d/svc/server.key" --root "$d/ref/ca.crt" \
    --rate-burst 1000000 --rate-per-minute 1000000 2>"$d/serve.log" &
  spid=$!
  PIDS+=($spid)
  wait_for "$d/serve.log" "listening on" $spid
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$d/serve.log" | head -1)
  for c in $CONCURRENCY; do
    before=$(cpu_ticks "$spid")
    row=$(load --url "https://127.0.0.1:$port" --root "$d/ref/ca.crt" --agents "$d/agents" \
      --concurrency "$c" --duration "$DURATION" --label "issuer serve, $curve intermediate, load $(cut -d' ' -f1 /proc/loadavg)" $header)
    after=$(cpu_ticks "$spid")
    echo "$row"
    renewals=$(echo "$row" | tail -1 | awk -F'|' '{ gsub(/ /, "", $5); print $5 }')
    floor=$(floor_us "$curve")
    if [ -n "$renewals" ] && [ "$renewals" -gt 0 ] && [ -n "$floor" ]; then
      awk -v t=$((after - before)) -v hz="$HZ" -v n="$renewals" -v f="$floor" 'BEGIN {
        ms = t * 1000 / hz / n
        printf "server CPU per renewal: %.2f ms = %.1f x the crypto floor (%.2f ms)\n", ms, ms * 1000 / f, f / 1000 }' >&2
    fi
    header=
  done
  kill "$spid"; wait "$spid" 2>/dev/null || true
  if [ "$HAVE_CFSSL" = 1 ]; then
    cfssl_up "$d"
    for c in 1 $CONCURRENCY; do
      load --cfssl "http://127.0.0.1:$CPORT" --agents "$d/agents" --concurrency "$c" \
        --duration "$DURATION" --label "cfssl serve newcert, $curve intermediate, load $(cut -d' ' -f1 /proc/loadavg)"
    done
    kill "$CPID"; wait "$CPID" 2>/dev/null || true
  else
    echo "| cfssl serve newcert, $curve intermediate: cfssl not installed (apt golang-cfssl) | | | | | | | | |"
  fi
done

echo
last=$(echo "$CURVES" | awk '{print $NF}')
d="$WORK/$last"
echo "## One leaf from the command line ($last intermediate, new P-256 key; wall time, 30 runs)"
echo
if [ "$HAVE_HYPERFINE" = 1 ]; then
  cmds=(-n "issuer issue client" --prepare "rm -rf $d/one"
    "env PKI_AGE_IDENTITY=$d/identity.txt $ISSUER issue client --ca $d/ca --out $d/one --cn one")
  if [ "$HAVE_CFSSL" = 1 ]; then
    echo '{"CN": "one", "key": {"algo": "ecdsa", "size": 256}}' >"$d/one-csr.json"
    cmds+=(-n "cfssl gencert" --prepare true
      "cfssl gencert -ca $d/ref/intermediate.crt -ca-key $d/cfssl-ca-key.pem -config $d/cfssl.json $d/one-csr.json")
  fi
  hyperfine -N --warmup 3 --runs 30 --style basic --export-markdown "$WORK/cli.md" "${cmds[@]}" >/dev/null 2>&1
  cat "$WORK/cli.md"
else
  echo "hyperfine not installed (apt hyperfine): no CLI figures"
fi
# start_serve DIR NAME: an `issuer serve` on DIR's CA folder; sets SPORT, appends to PIDS.
start_serve() {
  local d=$1 name=$2
  PKI_AGE_IDENTITY="$d/identity.txt" "$ISSUER" serve --ca "$d/ca" --listen 127.0.0.1:0 \
    --tls-cert "$d/svc/server.crt" --tls-key "$d/svc/server.key" --root "$d/ref/ca.crt" \
    --rate-burst 1000000 --rate-per-minute 1000000 2>"$d/serve-$name.log" &
  PIDS+=($!)
  wait_for "$d/serve-$name.log" "listening on" $!
  SPORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$d/serve-$name.log" | head -1)
}

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ "${POSTGRES:-1}" = 1 ] && [ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ]; then
  first=$(echo "$CURVES" | awk '{print $1}')
  d="$WORK/$first"
  echo
  echo "## The server ledger: $first intermediate, the same agents, ledger on PostgreSQL ($("$PGBIN/postgres" --version | awk '{print $3}'), a throwaway cluster on this machine's disk, fsync on)"
  echo
  pg="$WORK/pg"; mkdir -p "$pg"
  # The server runs as `postgres` when this runs as root: it must reach its folder.
  AS=(); if [ "$(id -u)" -eq 0 ]; then chmod 755 "$WORK"; chown postgres "$pg"; AS=(runuser -u postgres --); fi
  pw=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  echo "$pw" >"$pg/pw"; chmod 644 "$pg/pw"
  "${AS[@]}" "$PGBIN/initdb" -D "$pg/data" -U pki --auth-local=trust --auth-host=scram-sha-256 --pwfile="$pg/pw" >/dev/null
  rm -f "$pg/pw"
  umask 077; echo "$pw" >"$d/ledger.pass"; umask 022
  PGPORT=$(free_port)
  "${AS[@]}" "$PGBIN/pg_ctl" -D "$pg/data" -o "-k $pg -p $PGPORT -c listen_addresses=127.0.0.1 -c max_connections=50" -l "$pg/log" -w start >/dev/null
  trap '"${AS[@]}" "$PGBIN/pg_ctl" -D "$pg/data" -m immediate stop >/dev/null 2>&1 || true; cleanup' EXIT
  PGPASSWORD=$pw "$PGBIN/psql" -q -h 127.0.0.1 -p "$PGPORT" -U pki -d postgres -c "CREATE DATABASE pki"
  "$ISSUER" ledger migrate --ca "$d/ca" --to "postgres://pki@127.0.0.1:$PGPORT/pki" --password-file "$d/ledger.pass" >/dev/null
  start_serve "$d" pg1; p1=$SPORT
  header=--header
  for c in $CONCURRENCY; do
    load --url "https://127.0.0.1:$p1" --root "$d/ref/ca.crt" --agents "$d/agents" \
      --concurrency "$c" --duration "$DURATION" --label "issuer serve on PostgreSQL, 1 instance, $first, load $(cut -d' ' -f1 /proc/loadavg)" $header
    header=
  done
  start_serve "$d" pg2; p2=$SPORT
  for c in $CONCURRENCY; do
    load --url "https://127.0.0.1:$p1" --url "https://127.0.0.1:$p2" --root "$d/ref/ca.crt" --agents "$d/agents" \
      --concurrency "$c" --duration "$DURATION" --label "issuer serve on PostgreSQL, 2 instances, $first, load $(cut -d' ' -f1 /proc/loadavg)"
  done
  dupes=$(PGPASSWORD=$pw "$PGBIN/psql" -At -h 127.0.0.1 -p "$PGPORT" -U pki -d pki -c "SELECT count(*) - count(DISTINCT serial) FROM leaves")
  rows=$(PGPASSWORD=$pw "$PGBIN/psql" -At -h 127.0.0.1 -p "$PGPORT" -U pki -d pki -c "SELECT count(*) FROM leaves")
  echo
  echo "ledger after the runs: $rows leaves, $dupes duplicate serials"
else
  echo
  echo "(no PostgreSQL server binaries, or POSTGRES=0: the server-ledger runs are left out)"
fi

if grep -q "first error" "$WORK/load.log"; then
  echo
  grep "first error" "$WORK/load.log"
fi
echo
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
