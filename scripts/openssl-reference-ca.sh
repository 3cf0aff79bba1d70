#!/usr/bin/env bash
# openssl-reference-ca.sh OUT
#
# A two-tier CA made the way many teams make one by hand, with nothing but the openssl CLI. It is
# the starting point of the migration path (scripts/demo.sh: `intermediate-ca import` takes its
# intermediate) and the fixture of the end-to-end tests. Keys: P-384 for both CAs, P-256 leaves.
#
# OUT/ca.crt               the root (self-signed, pathlen 1)
# OUT/intermediate.crt     the intermediate (pathlen 0), recorded in the root's openssl-ca database
# OUT/crl.pem              the intermediate's CRL, listing negative/revoked
# OUT/nodes/etcd-N/        server.{crt,key}, peer.{crt,key}, ca.crt    (an etcd bundle, docs/etcd-facts.md)
# OUT/clients/NAME/        client.{crt,key}, ca.crt
# OUT/negative/            certificates a cluster must refuse, all with CN=root:
#     rogue-ca/            an unrelated root with the same subject as ours, and a client under it
#     wrong-eku/           our intermediate, but serverAuth only
#     expired/             our intermediate, valid for one day in 2020
#     revoked/             our intermediate, listed in crl.pem
# OUT/ca-private/          root.key, intermediate.key, openssl.cnf and the `openssl ca` databases.
#                          Offline material: never copy it into a bundle.
#
# Environment: NODES (3), CLIENTS ("root app-user"), INTERMEDIATE_CURVE (P-384; P-256 for
# scripts/bench-serve.sh), SERVER_EKU ("serverAuth, clientAuth": etcd's
# HTTP gateway presents server.crt as a client certificate, docs/etcd-facts.md I1).
# `openssl ca` with ca-private/openssl.cnf needs CADIR=OUT/ca-private, SAN and SERVER_EKU set.
set -euo pipefail

out=${1:?usage: openssl-reference-ca.sh OUT}
nodes=${NODES:-3}
clients=${CLIENTS:-root app-user}
intermediate_curve=${INTERMEDIATE_CURVE:-P-384}
export SERVER_EKU=${SERVER_EKU:-serverAuth, clientAuth}
org="pki-toolkit reference"

if [ -e "$out" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
  echo "openssl-reference-ca.sh: $out is not empty; give a new or empty folder" >&2
  exit 2
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
umask 022
priv="$out/ca-private"
mkdir -p "$priv" "$out/nodes" "$out/clients" "$out/negative"
chmod 700 "$priv"
export CADIR="$priv" SAN="DNS:localhost"
cnf="$priv/openssl.cnf"

# Serials: 16 random octets with the top bit clear, so DER keeps them positive and 16 octets long.
rand_serial() { echo "0x$(openssl rand -hex 16 | sed 's/^./4/')"; }

cat >"$cnf" <<'EOF'
# Profiles of the reference CA, plus the `openssl ca` sections used to revoke, back-date and
# publish CRLs. Needs CADIR, SAN and SERVER_EKU in the environment.
[ req ]
distinguished_name = req_dn
prompt             = no
[ req_dn ]
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

[ server_ext ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = ${ENV::SERVER_EKU}
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
subjectAltName         = ${ENV::SAN}

[ peer_ext ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth, clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
subjectAltName         = ${ENV::SAN}

[ client_ext ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always

[ server_only_ext ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always

[ crl_ext ]
authorityKeyIdentifier = keyid:always

[ ca ]
default_ca = intermediate_ca

[ intermediate_ca ]
dir              = ${ENV::CADIR}
database         = $dir/intermediate-db/index.txt
new_certs_dir    = $dir/intermediate-db/newcerts
serial           = $dir/intermediate-db/serial
crlnumber        = $dir/intermediate-db/crlnumber
certificate      = $dir/../intermediate.crt
private_key      = $dir/intermediate.key
default_md       = sha384
default_days     = 365
default_crl_days = 30
policy           = any_name
unique_subject   = no
copy_extensions  = none
crl_extensions   = crl_ext

[ root_ca ]
dir              = ${ENV::CADIR}
database         = $dir/root-db/index.txt
new_certs_dir    = $dir/root-db/newcerts
serial           = $dir/root-db/serial
crlnumber        = $dir/root-db/crlnumber
certificate      = $dir/../ca.crt
private_key      = $dir/root.key
default_md       = sha384
default_days     = 1825
default_crl_days = 30
policy           = any_name
unique_subject   = no
copy_extensions  = none
crl_extensions   = crl_ext

[ any_name ]
commonName       = supplied
organizationName = optional
EOF

for db in root-db intermediate-db; do
  mkdir -p "$priv/$db/newcerts"
  : >"$priv/$db/index.txt"
  echo 1000 >"$priv/$db/crlnumber"
  openssl rand -hex 16 >"$priv/$db/serial"
done

newkey() { # newkey FILE CURVE: a key no one else can read, from its first byte
  (umask 077 && openssl genpkey -quiet -algorithm EC -pkeyopt "ec_paramgen_curve:$2" -out "$1")
}

# The two CAs.
newkey "$priv/root.key" P-384
newkey "$priv/intermediate.key" "$intermediate_curve"
openssl req -config "$cnf" -new -x509 -key "$priv/root.key" -sha384 -days 3650 \
  -subj "/O=$org/CN=$org Root CA" -set_serial "$(rand_serial)" -extensions root_ext -out "$out/ca.crt"
openssl req -config "$cnf" -new -key "$priv/intermediate.key" \
  -subj "/O=$org/CN=$org Intermediate CA" -out "$priv/intermediate.csr"
openssl x509 -req -in "$priv/intermediate.csr" -CA "$out/ca.crt" -CAkey "$priv/root.key" -sha384 \
  -days 1825 -set_serial "$(rand_serial)" -extfile "$cnf" -extensions intermediate_ext \
  -out "$out/intermediate.crt" 2>/dev/null
# Known to the root's database, so that `openssl ca -name root_ca -revoke` can revoke it later.
openssl ca -config "$cnf" -name root_ca -valid "$out/intermediate.crt" 2>/dev/null

# issue DIR NAME CN EXTENSIONS [SAN]: DIR/NAME.key and DIR/NAME.crt (leaf, then intermediate).
issue() {
  local dir=$1 name=$2 cn=$3 ext=$4 san=${5:-DNS:localhost}
  mkdir -p "$dir"
  newkey "$dir/$name.key" P-256
  openssl req -config "$cnf" -new -key "$dir/$name.key" -subj "/CN=$cn" -out "$dir/$name.csr"
  SAN=$san openssl x509 -req -in "$dir/$name.csr" -CA "$out/intermediate.crt" \
    -CAkey "$priv/intermediate.key" -sha384 -days 365 -set_serial "$(rand_serial)" \
    -extfile "$cnf" -extensions "$ext" -out "$dir/$name.leaf" 2>/dev/null
  cat "$dir/$name.leaf" "$out/intermediate.crt" >"$dir/$name.crt"
  rm -f "$dir/$name.csr" "$dir/$name.leaf"
}

for i in $(seq 1 "$nodes"); do
  member="etcd-$i"
  dir="$out/nodes/$member"
  names="DNS:localhost,DNS:$member,IP:127.0.0.1"
  issue "$dir" server "$member" server_ext "$names"
  issue "$dir" peer "$member" peer_ext "$names"
  cp "$out/ca.crt" "$dir/ca.crt"
done
for user in $clients; do
  issue "$out/clients/$user" client "$user" client_ext
  cp "$out/ca.crt" "$out/clients/$user/ca.crt"
done

# Certificates a cluster must refuse.
neg="$out/negative"
rogue="$neg/rogue-ca"
mkdir -p "$rogue"
newkey "$priv/rogue-root.key" P-384
openssl req -config "$cnf" -new -x509 -key "$priv/rogue-root.key" -sha384 -days 3650 \
  -subj "/O=$org/CN=$org Root CA" -set_serial "$(rand_serial)" -extensions root_ext -out "$rogue/ca.crt"
newkey "$rogue/client.key" P-256
openssl req -config "$cnf" -new -key "$rogue/client.key" -subj "/CN=root" -out "$priv/rogue.csr"
openssl x509 -req -in "$priv/rogue.csr" -CA "$rogue/ca.crt" -CAkey "$priv/rogue-root.key" -sha384 \
  -days 365 -set_serial "$(rand_serial)" -extfile "$cnf" -extensions client_ext \
  -out "$rogue/client.crt" 2>/dev/null

issue "$neg/wrong-eku" client root server_only_ext

# `openssl x509 -req` cannot set a start date in the past; `openssl ca` can.
mkdir -p "$neg/expired"
newkey "$neg/expired/client.key" P-256
openssl req -config "$cnf" -new -key "$neg/expired/client.key" -subj "/CN=root" -out "$priv/expired.csr"
openssl ca -batch -config "$cnf" -name intermediate_ca -rand_serial -notext -in "$priv/expired.csr" \
  -startdate 20200101000000Z -enddate 20200102000000Z -extfile "$cnf" -extensions client_ext \
  -out "$neg/expired/client.leaf" 2>/dev/null
cat "$neg/expired/client.leaf" "$out/intermediate.crt" >"$neg/expired/client.crt"
rm -f "$neg/expired/client.leaf"

issue "$neg/revoked" client root client_ext
openssl x509 -in "$neg/revoked/client.crt" -out "$priv/revoked.pem"
openssl ca -config "$cnf" -name intermediate_ca -revoke "$priv/revoked.pem" \
  -crl_reason keyCompromise 2>/dev/null
openssl ca -config "$cnf" -name intermediate_ca -gencrl -out "$out/crl.pem" 2>/dev/null
rm -f "$priv"/*.csr "$priv/revoked.pem"

# Every chain we wrote must verify against the root alone.
for crt in "$out"/nodes/*/*.crt "$out"/clients/*/client.crt; do
  [ "$(basename "$crt")" = ca.crt ] && continue
  openssl verify -CAfile "$out/ca.crt" -untrusted "$crt" "$crt" >/dev/null
done
echo "reference CA in $out (keys in $priv)"
