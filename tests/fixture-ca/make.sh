#!/usr/bin/env bash
# make.sh: rebuilds the fixture CA of the CLI case files in this folder (README.md says what
# it is). Run from anywhere, after `cargo build --workspace --bins`; it replaces everything
# here but README.md and make.sh, so the case files that pin its names and dates must then be
# rewritten (TRYCMD=overwrite) and reviewed. Needs openssl. Keys are test-only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
target=${CARGO_TARGET_DIR:-$here/../../target}
bin=$target/debug
for t in intermediate-ca issuer; do
  [ -x "$bin/$t" ] || { echo "make.sh: no $bin/$t; run cargo build --workspace --bins" >&2; exit 2; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$here"
find . -mindepth 1 -maxdepth 1 ! -name README.md ! -name make.sh -exec rm -rf {} +
# The tools refuse secret files and output folders that group or others may use.
umask 077

cnf=$work/openssl.cnf
cat >"$cnf" <<'CNF'
[ req ]
distinguished_name = dn
prompt             = no
[ dn ]
CN = unused
[ root_ext ]
basicConstraints       = critical, CA:TRUE, pathlen:1
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
[ intermediate_ext ]
basicConstraints       = critical, CA:TRUE, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
CNF

# Root and intermediate the OpenSSL way (root-ca needs a PKCS#11 token; this fixture must not).
# Lifetimes: root ROOT_DAYS, intermediate INT_DAYS, from the day this script ran.
ROOT_DAYS=${ROOT_DAYS:-18262}
INT_DAYS=${INT_DAYS:-3653}
openssl ecparam -name secp384r1 -genkey -noout -out "$work/root.key"
openssl req -config "$cnf" -new -x509 -key "$work/root.key" -sha384 -days "$ROOT_DAYS" \
  -subj "/O=pki-toolkit fixture/CN=Fixture Root CA" -extensions root_ext \
  -set_serial 0x4f1c0000000000000000000000000001 -out root.crt
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$work/intermediate.key"
openssl req -config "$cnf" -new -key "$work/intermediate.key" -subj "/O=pki-toolkit fixture/CN=Fixture Intermediate CA" \
  -out "$work/intermediate.csr"
openssl x509 -req -in "$work/intermediate.csr" -CA root.crt -CAkey "$work/root.key" -sha384 \
  -days "$INT_DAYS" -set_serial 0x4f1c0000000000000000000000000002 \
  -extfile "$cnf" -extensions intermediate_ext -out "$work/intermediate.crt"
# An unrelated root with the same subject: what a chain must not be accepted against.
openssl ecparam -name secp384r1 -genkey -noout -out "$work/other-root.key"
openssl req -config "$cnf" -new -x509 -key "$work/other-root.key" -sha384 -days "$ROOT_DAYS" \
  -subj "/O=pki-toolkit fixture/CN=Fixture Root CA" -extensions root_ext \
  -set_serial 0x4f1c0000000000000000000000000003 -out other-root.crt

# The product's own commands from here on: the identity, the import, one leaf of each role.
"$bin/intermediate-ca" new-identity identity.txt
"$bin/intermediate-ca" import --cert "$work/intermediate.crt" --key "$work/intermediate.key" \
  --dir ca --identity identity.txt
export PKI_AGE_IDENTITY=$here/identity.txt
"$bin/issuer" issue server --ca ca --out leaves/etcd-1 --cn etcd-1 --dns etcd-1.example.internal \
  --ip 127.0.0.1 --days 825 --key p256
"$bin/issuer" issue client --ca ca --out leaves/app-user --cn app-user --days 825 --key p256
# The modes a git checkout gives (git keeps no 0600): tests/cli.rs makes identity.txt 0600
# again before the cases run.
find . -type d -exec chmod 755 {} +
find . -type f ! -name make.sh -exec chmod 644 {} +
echo "fixture CA written to $here"
