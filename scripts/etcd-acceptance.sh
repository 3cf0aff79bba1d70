#!/usr/bin/env bash
# etcd-acceptance.sh BUNDLE
#
# Acceptance checks of an etcd bundle (the layout of docs/etcd-facts.md, "Bundle layout"): what
# openssl says about every file, then a real 3-member etcd cluster on 127.0.0.1 with client and
# peer mTLS started from the bundle's files, then what etcd does with good and bad clients,
# certificate-CN RBAC and, when the bundle has a CRL, revocation.
#
# One line per check: "PASS name", "FAIL name: why" or "SKIP name: why"; the last line is exactly
# "N passed, M failed", and the exit status is 0 only when nothing failed.
#
# Environment: CLIENT_PORT_BASE (23790: member i listens on base+i), PEER_PORT_BASE (23800),
# DEADLINE (150 seconds for the whole run), KEEP_WORK=1 keeps the scratch folder (etcd logs),
# ETCD_BIN / ETCDCTL_BIN (etcd / etcdctl from PATH) run another release, e.g. the etcd 3.5.1 that
# scripts/install-deps.sh puts in ~/.cache/pki-toolkit/etcd-3.5.1/.
# Only 127.0.0.1 is used, and only the etcd processes this script started are signalled, by PID.
set -uo pipefail

[ $# -eq 1 ] && [ -d "$1" ] || { echo "usage: $0 BUNDLE" >&2; exit 2; }
B=$(cd "$1" && pwd)
ETCD_BIN=${ETCD_BIN:-etcd}
ETCDCTL_BIN=${ETCDCTL_BIN:-etcdctl}
# Not passed on: etcd and etcdctl 3.5 read every ETCD_* / ETCDCTL_* variable as a setting and
# warn about (print) the ones they do not know.
export -n ETCD_BIN ETCDCTL_BIN
for tool in "$ETCD_BIN" "$ETCDCTL_BIN" openssl curl timeout ss; do
  command -v "$tool" >/dev/null || { echo "$0: $tool is needed (scripts/install-deps.sh)" >&2; exit 2; }
done
echo "etcd: $("$ETCD_BIN" --version 2>/dev/null | head -1) ($(command -v "$ETCD_BIN"))"
export ETCDCTL_API=3
CPORT=${CLIENT_PORT_BASE:-23790}
PPORT=${PEER_PORT_BASE:-23800}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/etcd-acceptance.XXXXXX")
START=$SECONDS
npass=0 nfail=0 nskip=0
PIDS=()
WATCHDOG=""

pass() { echo "PASS $1"; npass=$((npass + 1)); }
fail() { echo "FAIL $1: $2"; nfail=$((nfail + 1)); }
skip() { echo "SKIP $1: $2"; nskip=$((nskip + 1)); }
summary() {
  echo "took $((SECONDS - START))s; $nskip skipped"
  echo "$npass passed, $nfail failed"
  [ "$nfail" -eq 0 ]
  exit $?
}
last_error() { grep -v '^{"level"' "$1" | grep -v '^[[:space:]]*$' | tail -1 | cut -c1-200; }

stop_members() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  PIDS=()
}
on_exit() {
  stop_members
  [ -n "$WATCHDOG" ] && kill -TERM "$WATCHDOG" 2>/dev/null && wait "$WATCHDOG" 2>/dev/null
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "(logs kept in $WORK)"; else rm -rf "$WORK"; fi
}
trap on_exit EXIT
trap 'echo "FAIL deadline: stopped after $((SECONDS - START))s"; exit 3' INT TERM
# Whatever blocks, the run ends: a watchdog signals this shell after DEADLINE seconds.
( sleep "${DEADLINE:-150}" & s=$!; trap 'kill $s 2>/dev/null; exit 0' TERM; wait $s; kill -TERM $$ 2>/dev/null ) &
WATCHDOG=$!

# ------------------------------------------------------------------------------ the files
MEMBERS=()
for d in "$B"/nodes/*/; do [ -d "$d" ] && MEMBERS+=("$(basename "$d")"); done
USERS=()
for d in "$B"/clients/*/; do [ -d "$d" ] && USERS+=("$(basename "$d")"); done
ROOT=$B/ca.crt
INTER=$B/intermediate.crt

absent=()
for f in ca.crt intermediate.crt; do [ -f "$B/$f" ] || absent+=("$f"); done
[ ${#MEMBERS[@]} -eq 3 ] || absent+=("nodes/* (3 member folders needed, ${#MEMBERS[@]} found)")
for m in "${MEMBERS[@]}"; do
  for f in ca.crt server.crt server.key peer.crt peer.key; do
    [ -f "$B/nodes/$m/$f" ] || absent+=("nodes/$m/$f")
  done
done
for u in root app-user; do
  for f in ca.crt client.crt client.key; do [ -f "$B/clients/$u/$f" ] || absent+=("clients/$u/$f"); done
done
if [ ${#absent[@]} -eq 0 ]; then pass layout; else fail layout "missing ${absent[*]}"; fi
if [ ! -f "$ROOT" ] || [ ! -f "$INTER" ] || [ ${#MEMBERS[@]} -ne 3 ] || [ ! -f "$B/clients/root/client.crt" ]; then
  echo "stopping: ca.crt, intermediate.crt, three members and clients/root are all needed"
  summary
fi

certs_in() { grep -c -- '-----BEGIN CERTIFICATE-----' "$1"; }
fingerprint() { openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2; }
# The fingerprint of the Nth (1-based) certificate of a PEM file.
nth_fingerprint() {
  awk -v want="$2" '/-----BEGIN CERTIFICATE-----/ { n++ } n == want { print } /-----END CERTIFICATE-----/ && n == want { exit }' "$1" | fingerprint
}

root_problem() {
  [ "$(certs_in "$ROOT")" = 1 ] || { echo "ca.crt must hold exactly one certificate"; return; }
  openssl verify -CAfile "$ROOT" "$ROOT" >/dev/null 2>&1 || { echo "ca.crt is not self-signed"; return; }
  openssl x509 -in "$ROOT" -noout -ext basicConstraints 2>/dev/null | grep -q 'CA:TRUE' || echo "ca.crt is not a CA"
}
why=$(root_problem)
if [ -z "$why" ]; then pass root-is-self-signed-ca; else fail root-is-self-signed-ca "$why"; fi
if why=$(openssl verify -CAfile "$ROOT" "$INTER" 2>&1) &&
  openssl x509 -in "$INTER" -noout -ext basicConstraints | grep -q 'CA:TRUE'; then
  pass intermediate-under-root
else
  fail intermediate-under-root "$(echo "$why" | tail -1)"
fi

differ=()
for f in "$B"/nodes/*/ca.crt "$B"/clients/*/ca.crt; do
  [ -f "$f" ] && ! cmp -s "$f" "$ROOT" && differ+=("${f#"$B"/}")
done
if [ ${#differ[@]} -eq 0 ]; then pass trust-copies-identical; else fail trust-copies-identical "not ca.crt: ${differ[*]}"; fi

INTER_FP=$(fingerprint <"$INTER")
# check_leaf CERT KEY PURPOSE...: paths relative to the bundle. The chain is verified as etcd's
# peers see it: the root trusted, everything else from the file itself.
check_leaf() {
  local crt=$B/$1 key=$B/$2 name=$1 errors="" p out n
  shift 2
  for p in "$@"; do
    out=$(openssl verify -CAfile "$ROOT" -untrusted "$crt" -purpose "$p" "$crt" 2>&1) ||
      errors+="[$p] $(echo "$out" | grep -i error | head -1) "
  done
  if [ -z "$errors" ]; then pass "verify $name ($*)"; else fail "verify $name" "$errors"; fi
  n=$(certs_in "$crt")
  if [ "$n" = 2 ] && [ "$(nth_fingerprint "$crt" 2)" = "$INTER_FP" ]; then
    pass "chain $name"
  else
    fail "chain $name" "want the leaf then intermediate.crt, found $n certificate(s)"
  fi
  local from_key from_cert
  from_key=$(openssl pkey -in "$key" -pubout 2>/dev/null)
  from_cert=$(openssl x509 -in "$crt" -noout -pubkey 2>/dev/null)
  if [ -n "$from_key" ] && [ "$from_key" = "$from_cert" ]; then pass "key-match $name"
  else fail "key-match $name" "${key#"$B"/} is not the key of this certificate"; fi
}
for m in "${MEMBERS[@]}"; do
  check_leaf "nodes/$m/server.crt" "nodes/$m/server.key" sslserver
  check_leaf "nodes/$m/peer.crt" "nodes/$m/peer.key" sslserver sslclient
done
for u in "${USERS[@]}"; do check_leaf "clients/$u/client.crt" "clients/$u/client.key" sslclient; done

# The cluster runs on loopback: without IP:127.0.0.1 etcd's peer check would resolve DNS names
# (docs/etcd-facts.md H), which must not leave this machine.
names_ok=1
for m in "${MEMBERS[@]}"; do
  why=""
  for f in server.crt peer.crt; do
    san=$(openssl x509 -in "$B/nodes/$m/$f" -noout -ext subjectAltName 2>/dev/null | tail -n +2)
    grep -q 'IP Address:127.0.0.1' <<<"$san" || why+="$f has no IP:127.0.0.1 "
    grep -q "DNS:$m\b" <<<"$san" || why+="$f has no DNS:$m "
  done
  if [ -z "$why" ]; then pass "names nodes/$m"; else fail "names nodes/$m" "$why"; names_ok=0; fi
done
for u in "${USERS[@]}"; do
  cn=$(openssl x509 -in "$B/clients/$u/client.crt" -noout -subject -nameopt multiline 2>/dev/null |
    sed -n 's/^ *commonName *= *//p')
  if [ "$cn" = "$u" ]; then pass "user-is-cn clients/$u"
  else fail "user-is-cn clients/$u" "CN '$cn' is not the folder name: etcd takes the RBAC user from the CN"; fi
done
loose=()
for k in "$B"/nodes/*/*.key "$B"/clients/*/*.key; do
  mode=$(stat -c %a "$k")
  [ "$mode" = 600 ] || [ "$mode" = 400 ] || loose+=("${k#"$B"/}=$mode")
done
if [ ${#loose[@]} -eq 0 ]; then pass key-modes; else fail key-modes "want 0600 or 0400: ${loose[*]}"; fi

# ------------------------------------------------------------------------------ the cluster
client_url() { echo "https://127.0.0.1:$((CPORT + $1))"; }
peer_url() { echo "https://127.0.0.1:$((PPORT + $1))"; }
every_client_url() { local i s=""; for i in 1 2 3; do s+="${s:+,}$(client_url $i)"; done; echo "$s"; }
INITIAL=""
for i in 1 2 3; do INITIAL+="${INITIAL:+,}${MEMBERS[$((i - 1))]}=$(peer_url $i)"; done

# start_members [flags for every member]: the flags of docs/etcd-facts.md "Bundle layout".
start_members() {
  local i m n
  mkdir -p "$WORK/data"
  for i in 1 2 3; do
    m=${MEMBERS[$((i - 1))]}
    n=$B/nodes/$m
    "$ETCD_BIN" --name "$m" --data-dir "$WORK/data/$m" \
      --listen-client-urls "$(client_url $i)" --advertise-client-urls "$(client_url $i)" \
      --listen-peer-urls "$(peer_url $i)" --initial-advertise-peer-urls "$(peer_url $i)" \
      --initial-cluster "$INITIAL" --initial-cluster-token "acceptance-$$" --initial-cluster-state new \
      --cert-file "$n/server.crt" --key-file "$n/server.key" --client-cert-auth --trusted-ca-file "$ROOT" \
      --peer-cert-file "$n/peer.crt" --peer-key-file "$n/peer.key" --peer-client-cert-auth \
      --peer-trusted-ca-file "$ROOT" --logger zap --log-outputs "$WORK/$m.log" --log-level info \
      "$@" >>"$WORK/$m.out" 2>&1 &
    PIDS+=($!)
  done
}

# ctl CERT KEY ARGS...: etcdctl against $EP (member 1 by default), always bounded in time.
ctl() {
  local cert=$1 key=$2
  shift 2
  timeout 20 "$ETCDCTL_BIN" --endpoints="${EP:-$(client_url 1)}" --cacert="$ROOT" \
    ${cert:+--cert="$cert"} ${key:+--key="$key"} --dial-timeout="${DIAL:-2s}" \
    --command-timeout="${CMD:-4s}" "$@"
}

# healthy_within SECONDS: every member answers; gives up early when one of them has exited.
healthy_within() {
  local until=$((SECONDS + $1)) pid
  while [ $SECONDS -lt $until ]; do
    EP=$(every_client_url) ctl "$RC" "$RK" endpoint health >"$WORK/health" 2>&1 && return 0
    for pid in "${PIDS[@]}"; do
      kill -0 "$pid" 2>/dev/null || { echo "etcd $pid exited" >>"$WORK/health"; return 1; }
    done
    sleep 0.3
  done
  return 1
}

RC=$B/clients/root/client.crt RK=$B/clients/root/client.key
AC=$B/clients/app-user/client.crt AK=$B/clients/app-user/client.key
busy=""
for i in 1 2 3; do
  for p in $((CPORT + i)) $((PPORT + i)); do ss -Hltn "sport = :$p" 2>/dev/null | grep -q . && busy+=" $p"; done
done
if [ $names_ok = 0 ]; then fail cluster-start "not started: member certificates need IP:127.0.0.1"; summary; fi
if [ -n "$busy" ]; then fail cluster-start "ports in use:$busy (set CLIENT_PORT_BASE / PEER_PORT_BASE)"; summary; fi

t=$SECONDS
start_members
if healthy_within 30; then
  pass "cluster-start (healthy after $((SECONDS - t))s)"
else
  fail cluster-start "not healthy within 30s: $(grep -E 'unhealthy|exited' "$WORK/health" | cut -c1-110 | tr '\n' ';')"
  for m in "${MEMBERS[@]}"; do
    grep -E '"level":"(error|fatal|warn)"' "$WORK/$m.log" 2>/dev/null | tail -2 | cut -c1-300 | sed "s/^/  [$m] /"
  done
  summary
fi

out=$(EP=$(every_client_url) ctl "$RC" "$RK" endpoint health 2>&1)
n=$(grep -c 'is healthy' <<<"$out")
if [ "$n" = 3 ]; then pass "all-members-healthy (peer mTLS works)"; else fail all-members-healthy "$n of 3: $(tail -1 <<<"$out")"; fi

out=$(ctl "$RC" "$RK" member list 2>&1)
n=0
for i in 1 2 3; do grep -q ", started, .*, $(peer_url $i)," <<<"$out" && n=$((n + 1)); done
if [ "$n" = 3 ]; then pass "member-list (3 started members on https peer URLs)"
else fail member-list "$(tr '\n' ' ' <<<"$out" | cut -c1-200)"; fi

out=$(EP=$(every_client_url) ctl "$RC" "$RK" endpoint status -w simple 2>&1)
# Only the table rows: etcdctl may print log lines (JSON warnings) too.
leaders=$(grep '^https://' <<<"$out" | awk -F', ' '$5 == "true"' | wc -l)
terms=$(grep '^https://' <<<"$out" | awk -F', ' '{ print $7 }' | sort -u | wc -l)
if [ "$leaders" = 1 ] && [ "$terms" = 1 ]; then pass one-leader
else fail one-leader "$leaders leaders, $terms terms: $(tr '\n' '|' <<<"$out" | cut -c1-300)"; fi

value="acceptance-$RANDOM-$$"
if ctl "$RC" "$RK" put /acceptance/k "$value" >/dev/null 2>"$WORK/err" &&
  [ "$(ctl "$RC" "$RK" get /acceptance/k --print-value-only 2>>"$WORK/err")" = "$value" ]; then
  pass put-get
else
  fail put-get "$(last_error "$WORK/err")"
fi
# A serializable read on member 3 answers from its own copy: the value crossed the peer TLS.
seen=""
for _ in $(seq 20); do
  seen=$(EP=$(client_url 3) ctl "$RC" "$RK" get /acceptance/k --print-value-only --consistency=s 2>/dev/null)
  [ "$seen" = "$value" ] && break
  sleep 0.1
done
if [ "$seen" = "$value" ]; then pass "replicated (read locally on member 3)"; else fail replicated "member 3 has '$seen'"; fi

out=$(curl -sS --max-time 5 --cacert "$ROOT" --cert "$RC" --key "$RK" -X POST "$(client_url 1)/v3/kv/range" \
  -d '{"key":"L2FjY2VwdGFuY2Uvaw=="}' 2>&1)
if grep -q '"kvs"' <<<"$out"; then pass "json-gateway (server.crt works as a client certificate)"
else fail json-gateway "'$(cut -c1-120 <<<"$out")': server.crt needs EKU clientAuth (docs/etcd-facts.md I1)"; fi
out=$(curl -sS --max-time 5 --cacert "$ROOT" --cert "$RC" --key "$RK" "$(client_url 1)/health" 2>&1)
if grep -q '"health":"true"' <<<"$out"; then pass http-health; else fail http-health "$out"; fi

# refused NAME CERT KEY LOG-REGEX: etcdctl must fail AND etcd must log why (etcdctl 3.4 itself
# only says "context deadline exceeded").
log_sizes() { local m; for m in "${MEMBERS[@]}"; do stat -c %s "$WORK/$m.log" 2>/dev/null || echo 0; done; }
refused() {
  local name=$1 cert=$2 key=$3 want=$4 rc i=0 m reasons hit
  local -a before
  mapfile -t before < <(log_sizes)
  DIAL=1s CMD=2s ctl "$cert" "$key" get /acceptance/k >"$WORK/out" 2>"$WORK/err"
  rc=$?
  sleep 0.3
  reasons=$(for m in "${MEMBERS[@]}"; do
    tail -c +"$((${before[$i]:-0} + 1))" "$WORK/$m.log" 2>/dev/null
    i=$((i + 1))
  done | grep '"rejected connection"' | grep -o '"error":"[^}]*' | cut -c10- | sed 's/"$//' | sort -u)
  hit=$(grep -E "$want" <<<"$reasons" | head -1 | cut -c1-110)
  if [ $rc -eq 0 ]; then fail "$name" "accepted (got $(head -c 80 "$WORK/out"))"
  elif [ -n "$hit" ]; then pass "$name (etcd: $hit)"
  else fail "$name" "refused, but etcd did not log /$want/ (etcd: $(tr '\n' '|' <<<"${reasons:-nothing}" | cut -c1-200); etcdctl: $(last_error "$WORK/err"))"; fi
}
refused refuse-no-certificate "" "" "didn't provide a certificate"

# Certificates that must be refused: the bundle's negative/ folder when it has one, else an
# unrelated CA minted here (the other cases need our CA's key, so they are skipped).
NEG=$B/negative
ROGUE=$NEG/rogue-ca
if [ ! -f "$ROGUE/client.crt" ]; then
  ROGUE=$WORK/rogue
  mkdir -p "$ROGUE"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$ROGUE/ca.key" \
    -subj "/CN=unrelated root" -days 2 -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign" -out "$ROGUE/ca.crt" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$ROGUE/client.key" \
    -subj "/CN=root" -out "$ROGUE/client.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n' >"$ROGUE/ext"
  openssl x509 -req -in "$ROGUE/client.csr" -CA "$ROGUE/ca.crt" -CAkey "$ROGUE/ca.key" -set_serial 7 \
    -days 1 -extfile "$ROGUE/ext" -out "$ROGUE/client.crt" 2>/dev/null
fi
refused "refuse-unrelated-ca (CN=root)" "$ROGUE/client.crt" "$ROGUE/client.key" "unknown authority"
if [ -f "$NEG/wrong-eku/client.crt" ]; then
  refused "refuse-server-only-eku (CN=root)" "$NEG/wrong-eku/client.crt" "$NEG/wrong-eku/client.key" "incompatible key usage"
else skip refuse-server-only-eku "no negative/wrong-eku/"; fi
if [ -f "$NEG/expired/client.crt" ]; then
  refused "refuse-expired (CN=root)" "$NEG/expired/client.crt" "$NEG/expired/client.key" "expired"
else skip refuse-expired "no negative/expired/"; fi

plain="http://127.0.0.1:$((CPORT + 1))"
out=$(DIAL=1s CMD=2s EP=$plain ctl "" "" get /acceptance/k 2>&1)
rc=$?
health=$(curl -sS --max-time 3 "$plain/health" 2>&1)
if [ $rc -ne 0 ] && ! grep -q '"health"' <<<"$health"; then pass refuse-plain-http
else fail refuse-plain-http "answered without TLS (etcdctl $rc, curl: $health)"; fi

# The peer port speaks HTTP/1.1 only; curl's HTTP/2 attempt fails the same way whether the
# certificate is good or not, so force HTTP/1.1 to see a real answer.
members_api="https://127.0.0.1:$((PPORT + 1))/members"
out=$(curl -sS --http1.1 --max-time 3 --cacert "$ROOT" "$members_api" 2>&1)
if ! grep -q peerURLs <<<"$out"; then pass peer-port-needs-certificate
else fail peer-port-needs-certificate "/members answered without a client certificate"; fi
out=$(curl -sS --http1.1 --max-time 3 --cacert "$ROOT" --cert "$ROGUE/client.crt" --key "$ROGUE/client.key" "$members_api" 2>&1)
if ! grep -q peerURLs <<<"$out"; then pass peer-port-refuses-unrelated-ca
else fail peer-port-refuses-unrelated-ca "/members answered an unrelated CA's certificate"; fi

# RBAC: the user is the certificate's CN (docs/etcd-facts.md E); no password is ever sent.
as_root() { ctl "$RC" "$RK" "$@" >>"$WORK/rbac" 2>&1 || { echo "'$*': $(last_error "$WORK/rbac")"; return 1; }; }
rbac() {
  as_root user add root --no-password && as_root user grant-role root root &&
    as_root role add app-rw && as_root role grant-permission app-rw --prefix=true readwrite /app/ &&
    as_root user add app-user --no-password && as_root user grant-role app-user app-rw &&
    as_root auth enable
}
if why=$(rbac); then
  pass "rbac-setup (root and app-user without passwords, app-rw = readwrite /app/)"
  if ctl "$AC" "$AK" put /app/k1 v1 >/dev/null 2>"$WORK/err"; then pass rbac-app-user-writes-own-prefix
  else fail rbac-app-user-writes-own-prefix "$(last_error "$WORK/err")"; fi
  if ctl "$AC" "$AK" put /other/k1 v1 >/dev/null 2>"$WORK/err"; then fail rbac-app-user-write-elsewhere-denied "allowed"
  elif grep -q 'permission denied' "$WORK/err"; then pass rbac-app-user-write-elsewhere-denied
  else fail rbac-app-user-write-elsewhere-denied "$(last_error "$WORK/err")"; fi
  if ctl "$AC" "$AK" get /acceptance/k >/dev/null 2>"$WORK/err"; then fail rbac-app-user-read-elsewhere-denied "allowed"
  elif grep -q 'permission denied' "$WORK/err"; then pass rbac-app-user-read-elsewhere-denied
  else fail rbac-app-user-read-elsewhere-denied "$(last_error "$WORK/err")"; fi
  if ctl "$RC" "$RK" put /other/k1 v1 >/dev/null 2>"$WORK/err"; then pass rbac-root-writes-anywhere
  else fail rbac-root-writes-anywhere "$(last_error "$WORK/err")"; fi
else
  fail rbac-setup "$why"
fi

# ------------------------------------------------------------------------------ revocation
CRL=""
for f in crl.der crl.pem; do [ -f "$B/$f" ] && { CRL=$B/$f; break; }; done
if [ -n "$CRL" ]; then
  stop_members
  t=$SECONDS
  start_members --client-crl-file "$CRL" --peer-crl-file "$CRL"
  if healthy_within 30; then
    pass "crl-restart (healthy after $((SECONDS - t))s with $(basename "$CRL"))"
    if ctl "$AC" "$AK" get /app/k1 --print-value-only 2>"$WORK/err" | grep -q v1; then pass crl-good-client-accepted
    else fail crl-good-client-accepted "$(last_error "$WORK/err")"; fi
    if [ -f "$NEG/revoked/client.crt" ]; then
      refused crl-revoked-client-refused "$NEG/revoked/client.crt" "$NEG/revoked/client.key" "revoked"
    else skip crl-revoked-client-refused "no negative/revoked/"; fi
  else
    fail crl-restart "not healthy within 30s with $(basename "$CRL"): $(last_error "$WORK/health")"
  fi
else
  skip crl "the bundle has no crl.pem or crl.der"
fi

stop_members
summary
