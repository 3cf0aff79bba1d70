#!/usr/bin/env bash
# Creates a throwaway SoftHSM2 token for tests and ceremony rehearsals.
# Usage: softhsm/new-token.sh DIR [TOKEN_LABEL]
# Writes DIR/softhsm2.conf, DIR/tokens/, DIR/user.pin and DIR/so.pin (random, 0600) and prints
# the environment to use. Never use a software token for a production root.
set -euo pipefail
DIR=${1:?usage: new-token.sh DIR [TOKEN_LABEL]}
LABEL=${2:-root-ca}
HERE=$(cd "$(dirname "$0")" && pwd)
command -v softhsm2-util >/dev/null || { echo "softhsm2-util missing: apt-get install softhsm2" >&2; exit 1; }
if [ -e "$DIR/softhsm2.conf" ]; then echo "refusing: $DIR/softhsm2.conf exists" >&2; exit 2; fi
mkdir -p "$DIR/tokens"; DIR=$(cd "$DIR" && pwd)
chmod 700 "$DIR" "$DIR/tokens"
sed "s#@TOKENDIR@#$DIR/tokens#" "$HERE/softhsm2.conf.template" > "$DIR/softhsm2.conf"
umask 077
head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/user.pin"
head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/so.pin"
SOFTHSM2_CONF="$DIR/softhsm2.conf" softhsm2-util --init-token --free --label "$LABEL" \
  --pin "$(cat "$DIR/user.pin")" --so-pin "$(cat "$DIR/so.pin")" >/dev/null
cat <<ENV
export SOFTHSM2_CONF=$DIR/softhsm2.conf
# token '$LABEL', module /usr/lib/softhsm/libsofthsm2.so
# user PIN in $DIR/user.pin: pass --pin-file $DIR/user.pin to root-ca
ENV
