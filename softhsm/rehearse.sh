#!/usr/bin/env bash
# The whole two-tier flow on a throwaway SoftHSM2 token, exactly as the runbooks say:
#   root init -> intermediate request -> root sign -> install -> issuer leaves (etcd bundle).
# Usage: softhsm/rehearse.sh OUT        (OUT must not exist or be empty)
# Leaves OUT/root/ OUT/intermediate/ OUT/bundles/ OUT/etcd/ OUT/ceremonies/ OUT/softhsm/ and
# OUT/env (source it to go on working on OUT with root-ca, intermediate-ca and issuer).
set -euo pipefail
OUT=${1:?usage: softhsm/rehearse.sh OUT}
HERE=$(cd "$(dirname "$0")/.." && pwd)
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then echo "refusing to write into non-empty $OUT" >&2; exit 2; fi

"$HERE/scripts/install-deps.sh"
echo "== building the tools (release)"
# The whole workspace, as `cargo build --release` builds it: the same packages and features, so
# a release build made before is reused, not recompiled (pki-agent included).
cargo build --release --quiet --locked --manifest-path "$HERE/Cargo.toml" --workspace
# Wherever cargo put them (CARGO_TARGET_DIR, .cargo/config.toml), not a guessed target/.
BIN="$("$HERE/scripts/cargo-target-dir.sh")/release"
[ -x "$BIN/root-ca" ] || { echo "rehearse.sh: cargo built no $BIN/root-ca" >&2; exit 1; }
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
mkdir -p "$OUT/bundles" "$OUT/ceremonies"

echo "== throwaway SoftHSM2 token (a rehearsal: a software token is not an HSM)"
mkdir -p "$OUT/softhsm"
"$HERE/softhsm/new-token.sh" "$OUT/softhsm" root-ca > "$OUT/softhsm/env"
export SOFTHSM2_CONF="$OUT/softhsm/softhsm2.conf"
PIN="$OUT/softhsm/user.pin"

echo "== root ceremony 1: key generation and self-signed root"
cat > "$OUT/ceremonies/01-root-init.toml" <<TOML
allow-network = true   # rehearsal on a networked machine; false on the real air-gapped one
[token]
module = "/usr/lib/softhsm/libsofthsm2.so"
token-label = "root-ca"
key-label = "rehearsal-root"
[key]
algorithm = "p384"
[root]
common-name = "Rehearsal Root CA"
organization = "PKI rehearsal"
days = 3653
[output]
dir = "../root"
TOML
"$BIN/root-ca" init "$OUT/ceremonies/01-root-init.toml" --pin-file "$PIN"
ROOT_FP=$(openssl x509 -in "$OUT/root/root.crt" -noout -fingerprint -sha256 | cut -d= -f2)

echo "== online side: intermediate key, CSR and request bundle"
"$BIN/intermediate-ca" new-identity "$OUT/intermediate-identity.txt"
export PKI_AGE_IDENTITY="$OUT/intermediate-identity.txt"
"$BIN/intermediate-ca" request --dir "$OUT/intermediate" --to-file "$OUT/root/transport.recipient" \
  --cn "Rehearsal etcd Intermediate CA" --out "$OUT/bundles/request-1.age" | tee "$OUT/bundles/request-1.txt"
KEY_FP=$(sed -n 's/^CSR key fingerprint.*: //p' "$OUT/bundles/request-1.txt")

echo "== root ceremony 2: sign the intermediate (fingerprint read out: $KEY_FP)"
cat > "$OUT/ceremonies/02-root-sign.toml" <<TOML
allow-network = true
root-dir = "../root"
[token]
module = "/usr/lib/softhsm/libsofthsm2.so"
token-label = "root-ca"
key-label = "rehearsal-root"
[request]
bundle = "../bundles/request-1.age"
key-fingerprint = "$KEY_FP"
[certificate]
days = 1826
[output]
response = "../bundles/response-1.age"
TOML
"$BIN/root-ca" sign "$OUT/ceremonies/02-root-sign.toml" --pin-file "$PIN"
"$BIN/root-ca" log verify "$OUT/root"

echo "== online side: install the response, pinned to the root fingerprint"
"$BIN/intermediate-ca" install --dir "$OUT/intermediate" --root-fingerprint "$ROOT_FP" "$OUT/bundles/response-1.age"
"$BIN/intermediate-ca" status --dir "$OUT/intermediate"

echo "== issuer: etcd bundle (members etcd-1..3 on loopback, clients root and app-user)"
cat > "$OUT/cluster.toml" <<TOML
# The cluster file of the rehearsal: three members on 127.0.0.1 (distinct ports), installed in place.
name = "rehearsal"
etcd-version = "3.4"
install-dir = "$OUT/etcd/nodes/{name}"
client-install-dir = "$OUT/etcd/clients/{name}"
data-dir = "$OUT/etcd-data/{name}"
TOML
for n in 1 2 3; do cat >> "$OUT/cluster.toml" <<TOML

[[member]]
name = "etcd-$n"
ips = ["127.0.0.1"]
dns = ["localhost"]
client-urls = ["https://127.0.0.1:3${n}379"]
peer-urls = ["https://127.0.0.1:3${n}380"]
TOML
done
cat >> "$OUT/cluster.toml" <<TOML

[[client]]
name = "root"

[[client]]
name = "app-user"
roles = ["app-rw"]

[[role]]
name = "app-rw"
readwrite = ["/app/"]
TOML
"$BIN/issuer" etcd --ca "$OUT/intermediate" --cluster "$OUT/cluster.toml" --out "$OUT/etcd"
"$BIN/issuer" check-etcd "$OUT/etcd"

echo "== checks with openssl against the root alone"
for f in "$OUT"/etcd/nodes/*/server.crt "$OUT"/etcd/nodes/*/peer.crt; do
  openssl verify -CAfile "$OUT/root/root.crt" -untrusted "$f" -purpose sslserver "$f" >/dev/null
done
for f in "$OUT"/etcd/clients/*/client.crt "$OUT"/etcd/nodes/*/peer.crt; do
  openssl verify -CAfile "$OUT/root/root.crt" -untrusted "$f" -purpose sslclient "$f" >/dev/null
done
echo "all leaves verify with openssl"

cat > "$OUT/env" <<ENV
# source this file to go on working on $OUT
export SOFTHSM2_CONF=$OUT/softhsm/softhsm2.conf
export PKI_AGE_IDENTITY=$OUT/intermediate-identity.txt
export PATH=$BIN:\$PATH
# root-ca ceremonies: --pin-file $OUT/softhsm/user.pin ; issuer/intermediate-ca: --ca/--dir $OUT/intermediate
ENV
cat <<DONE

rehearsal complete in $OUT:
  root/            root certificate (fingerprint $ROOT_FP), ceremony log, transport recipient
  intermediate/    the online intermediate (generation 1 active) and its ledger
  bundles/         request-1.age and response-1.age, as they crossed the air gap
  ceremonies/      the ceremony files that were run
  etcd/            the etcd bundle (ca.crt, intermediate.crt, crl.der, nodes/etcd-{1,2,3}, clients/{root,app-user}, rbac.sh)
                   start a member: env -i PATH=\$PATH bash -c 'set -a; . $OUT/etcd/nodes/etcd-1/etcd.env; exec etcd'
  cluster.toml     the cluster file it was made from
  env              source it:  . $OUT/env && issuer list --ca $OUT/intermediate
DONE
