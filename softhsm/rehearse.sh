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
cargo build --release --quiet --locked --manifest-path "$HERE/Cargo.toml" -p root-ca -p intermediate-ca -p issuer
BIN="$HERE/target/release"
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

echo "== issuer: etcd bundle"
mkdir -p "$OUT/etcd"
cp "$OUT/root/root.crt" "$OUT/etcd/ca.crt"
cp "$OUT/intermediate/generations/1/intermediate.crt" "$OUT/etcd/intermediate.crt"
for n in 1 2 3; do
  d="$OUT/etcd/nodes/etcd-$n"
  "$BIN/issuer" issue server --ca "$OUT/intermediate" --out "$d" --cn "etcd-$n" --dns "etcd-$n" --dns localhost --ip 127.0.0.1 >/dev/null
  "$BIN/issuer" issue peer   --ca "$OUT/intermediate" --out "$d" --cn "etcd-$n" --dns "etcd-$n" --dns localhost --ip 127.0.0.1 >/dev/null
  cp "$OUT/etcd/ca.crt" "$d/ca.crt"
done
for u in root app-user; do
  d="$OUT/etcd/clients/$u"
  "$BIN/issuer" issue client --ca "$OUT/intermediate" --out "$d" --cn "$u" >/dev/null
  cp "$OUT/etcd/ca.crt" "$d/ca.crt"
done

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
  etcd/            the etcd bundle (ca.crt, intermediate.crt, nodes/etcd-{1,2,3}, clients/{root,app-user})
  env              source it:  . $OUT/env && issuer list --ca $OUT/intermediate
DONE
