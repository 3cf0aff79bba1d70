#!/usr/bin/env bash
# How the size of etcd's CRL file costs connections (README "Performance", docs/crl.md).
# etcd reads and parses the whole --crl-file on every new TLS connection, so the connection rate
# falls as the CRL grows. One real etcd member (whatever `etcd` is on PATH), client mTLS, and a
# new TLS connection per `GET /health` (curl, no session reuse, `Connection: close`); the CRL
# file is swapped under the running member between rounds (etcd re-reads it per connection), so
# every size is measured in the same run, interleaved, and reported as a ratio to the empty CRL.
# Sizes: empty, 10,000 and 100,000 entries, and "one year": the etcd CRL of a cluster with 500
# leaves of 90 days renewed every 60 days and 2% of them revoked per month, under the expiry
# rule of docs/crl.md (an entry stays until its certificate expired plus one more daily CRL).
# The CRLs are made with `openssl ca` (etcd matches serials only and checks no CRL signature,
# so the signer does not matter for this cost); they are DER, which every etcd version reads.
# Usage: scripts/bench-etcd-crl.sh   (CONNS=100 connections per round, ROUNDS=7; KEEP_WORK=1)
# Sizes 100 to 3,000 place the check-etcd warning (docs/crl.md, "Keeping the etcd CRL small").
# etcd flag: --client-crl-file. Only 127.0.0.1 is used; only the etcd this script started is signalled, by PID.
set -euo pipefail
CONNS=${CONNS:-100}
ROUNDS=${ROUNDS:-7}
for tool in etcd openssl curl awk; do
  command -v "$tool" >/dev/null || { echo "missing $tool (scripts/install-deps.sh)" >&2; exit 1; }
done
WORK=$(mktemp -d)
ETCD_PID=""
cleanup() {
  local rc=$?
  set +e
  [ -n "$ETCD_PID" ] && kill "$ETCD_PID" 2>/dev/null && wait "$ETCD_PID" 2>/dev/null
  [ "${KEEP_WORK:-}" = 1 ] && echo "work folder kept: $WORK" >&2 || rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
cd "$WORK"

# A throw-away CA, a server certificate for 127.0.0.1 and a client certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt \
  -subj /CN=bench-ca -days 30 -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
leaf() { # leaf NAME EKU [SAN]
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" \
    -subj "/CN=$1" 2>/dev/null
  printf 'extendedKeyUsage=%s\n%s\n' "$2" "${3:+subjectAltName=$3}" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
    -days 30 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}
leaf server serverAuth,clientAuth IP:127.0.0.1
leaf client clientAuth

# crl NAME COUNT: a DER CRL of COUNT revoked 16-byte serials (our leaves' serial size).
mkdir -p db
crl() {
  : >db/index.txt
  awk -v n="$2" 'BEGIN { for (i = 0; i < n; i++)
      printf "R\t301231000000Z\t261101000000Z,keyCompromise\t7E%030X\tunknown\t/CN=gone%d\n", i, i }' \
    >db/index.txt
  cat >db/ca.cnf <<EOF
[ca]
default_ca = bench
[bench]
database = $WORK/db/index.txt
crlnumber = $WORK/db/crlnumber
default_md = sha256
default_crl_days = 30
unique_subject = no
EOF
  echo 01 >db/crlnumber
  openssl ca -config db/ca.cnf -gencrl -keyfile ca.key -cert ca.crt -out "$1.pem" 2>/dev/null
  openssl crl -in "$1.pem" -outform DER -out "$1.der"
}

# The one-year model, simulated day by day with a fixed seed: how many entries the etcd CRL
# holds at day 365 with the expiry rule, and how many without it (every revocation of the year).
read -r YEAR_N YEAR_ALL < <(awk 'BEGIN {
  srand(13); leaves = 500; life = 90; renew = 60; p = 0.02 / 30
  for (i = 0; i < leaves; i++) issued[i] = -int(rand() * renew)
  for (d = 0; d <= 365; d++) for (i = 0; i < leaves; i++) {
    if (d - issued[i] >= renew) issued[i] = d          # renewed: the old one is superseded
    if (rand() < p) { until[n++] = issued[i] + life; issued[i] = d }  # revoked, re-issued
  }
  # Listed while unexpired, plus the one daily CRL issued after its expiry.
  for (k = 0; k < n; k++) if (until[k] + 1 >= 365) kept++
  print kept + 0, n
}')

crl empty 0
crl year "$YEAR_N"
crl h1 100
crl h3 300
crl k1 1000
crl k3 3000
crl k10 10000
crl k100 100000
NAMES=(empty year h1 h3 k1 k3 k10 k100)
declare -A LABEL=([empty]="empty" [year]="one year ($YEAR_N entries; $YEAR_ALL without the expiry rule)"
  [h1]="100 entries" [h3]="300 entries" [k1]="1,000 entries" [k3]="3,000 entries" [k10]="10,000 entries" [k100]="100,000 entries")
# Fewer connections where each one is slow, so a round stays within a minute.
declare -A COUNT=([empty]=$CONNS [year]=$CONNS [h1]=$CONNS [h3]=$CONNS [k1]=$CONNS [k3]=$CONNS [k10]=$((CONNS / 4))
  [k100]=$((CONNS / 20 > 5 ? CONNS / 20 : 5)))

cp empty.der crl.der
etcd --name bench --data-dir "$WORK/data" \
  --listen-client-urls https://127.0.0.1:23791 --advertise-client-urls https://127.0.0.1:23791 \
  --listen-peer-urls http://127.0.0.1:23801 --initial-advertise-peer-urls http://127.0.0.1:23801 \
  --initial-cluster bench=http://127.0.0.1:23801 \
  --cert-file server.crt --key-file server.key --client-cert-auth --trusted-ca-file ca.crt \
  --client-crl-file "$WORK/crl.der" >etcd.log 2>&1 &
ETCD_PID=$!
CURL=(curl -s --http1.1 --no-sessionid -H 'Connection: close' --cacert ca.crt --cert client.crt
  --key client.key)
for _ in $(seq 100); do
  "${CURL[@]}" -o /dev/null https://127.0.0.1:23791/health && break
  kill -0 "$ETCD_PID" 2>/dev/null || { tail etcd.log >&2; exit 1; }
  sleep 0.2
done

# One round: COUNT requests in one curl, each on a new connection; per-request times to a file.
measure() { # measure NAME ROUND
  cp "$1.der" crl.tmp && mv crl.tmp crl.der
  local n=${COUNT[$1]} s e ok
  s=$(date +%s%N)
  for _ in $(seq "$n"); do printf 'url = "https://127.0.0.1:23791/health"\noutput = "/dev/null"\n'; done |
    "${CURL[@]}" -w '%{http_code} %{time_total} %{num_connects}\n' -K - >"$1.$2.t"
  e=$(date +%s%N)
  ok=$(grep -c '^200 .* 1$' "$1.$2.t" || true)
  [ "$ok" = "$n" ] || { echo "$1: only $ok of $n requests answered 200 on a new connection" >&2; exit 1; }
  echo "$1 $2 $(awk -v n="$n" -v ns=$((e - s)) 'BEGIN { printf "%.1f", n / (ns / 1e9) }')" >>rates
}
for r in $(seq "$ROUNDS"); do for n in "${NAMES[@]}"; do measure "$n" "$r"; done; done

median() { sort -g | awk '{a[NR] = $1} END { print a[int((NR + 1) / 2)] }'; }
# Ratios to the empty CRL are taken round by round, then their median: the machine's load drifts
# between rounds, much less within one.
echo "etcd $(etcd --version | awk '/etcd Version/ { print $3 }'), 1 member, a new TLS connection per GET /health (up to $CONNS per round, median of $ROUNDS rounds; load $(cut -d' ' -f1-3 /proc/loadavg)):"
base50=$(cat empty.*.t | awk '{ print $2 * 1000 }' | median)
printf '  %-56s %11s  %12s  %8s  %s\n' CRL "size" "conn/s" "p50" "vs empty: rate (per round), p50"
for n in "${NAMES[@]}"; do
  rate=$(awk -v n="$n" '$1 == n { print $3 }' rates | median)
  ratio=$(awk -v n="$n" '$1 == "empty" { e[$2] = $3 } $1 == n { r[$2] = $3 }
    END { for (k in r) print r[k] / e[k] }' rates | median)
  p50=$(cat "$n".*.t | awk '{ print $2 * 1000 }' | median)
  printf '  %-56s %11s  %12s  %5.1f ms  %.2f, %.2f\n' "${LABEL[$n]}" "$(stat -c %s "$n.der") B" \
    "$rate /s" "$p50" "$ratio" "$(awk -v a="$base50" -v b="$p50" 'BEGIN { print a / b }')"
done
