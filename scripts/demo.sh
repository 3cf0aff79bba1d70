#!/usr/bin/env bash
# The main flow, end to end, on this machine: an existing CA made the OpenSSL way is brought
# under management, then a server, a peer and a client certificate are issued and verified.
# Usage: scripts/demo.sh OUT   (OUT must not exist or be empty)
set -euo pipefail
OUT=${1:?usage: scripts/demo.sh OUT}
HERE=$(cd "$(dirname "$0")/.." && pwd)
"$HERE/scripts/install-deps.sh"
cargo build --release --quiet --manifest-path "$HERE/Cargo.toml" -p intermediate-ca -p issuer
BIN="$("$HERE/scripts/cargo-target-dir.sh")/release"
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then echo "refusing to write into non-empty $OUT" >&2; exit 2; fi
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)

echo "== 1. a CA made with the OpenSSL flow (the seed's habits)"
"$HERE/scripts/openssl-reference-ca.sh" "$OUT/openssl" >/dev/null
echo "== 2. import its intermediate; the key is re-encrypted at rest with an age identity"
"$BIN/intermediate-ca" new-identity "$OUT/identity.txt"
"$BIN/intermediate-ca" import --cert "$OUT/openssl/intermediate.crt" \
  --key "$OUT/openssl/ca-private/intermediate.key" --dir "$OUT/intermediate" --identity "$OUT/identity.txt"
export PKI_AGE_IDENTITY="$OUT/identity.txt"
echo "== 3. issue server, peer and client certificates"
"$BIN/issuer" issue server --ca "$OUT/intermediate" --out "$OUT/etcd-1" --cn etcd-1 --dns etcd-1 --dns localhost --ip 127.0.0.1
"$BIN/issuer" issue peer   --ca "$OUT/intermediate" --out "$OUT/etcd-1" --cn etcd-1 --dns etcd-1 --ip 127.0.0.1
"$BIN/issuer" issue client --ca "$OUT/intermediate" --out "$OUT/app-user" --cn app-user
echo "== 4. verify them against the root alone"
"$BIN/issuer" verify --root "$OUT/openssl/ca.crt" --role server --key "$OUT/etcd-1/server.key" "$OUT/etcd-1/server.crt"
"$BIN/issuer" verify --root "$OUT/openssl/ca.crt" --role peer --key "$OUT/etcd-1/peer.key" "$OUT/etcd-1/peer.crt"
"$BIN/issuer" verify --root "$OUT/openssl/ca.crt" --role client --key "$OUT/app-user/client.key" "$OUT/app-user/client.crt"
openssl verify -CAfile "$OUT/openssl/ca.crt" -untrusted "$OUT/etcd-1/server.crt" -purpose sslserver "$OUT/etcd-1/server.crt"
"$BIN/issuer" list --ca "$OUT/intermediate"
echo "done: CA folder $OUT/intermediate, leaves in $OUT/etcd-1 and $OUT/app-user (PKI_AGE_IDENTITY=$OUT/identity.txt)"
