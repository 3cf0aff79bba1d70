#!/usr/bin/env bash
# Installs the system packages the tools and their tests need (Debian/Ubuntu), only when missing:
# SoftHSM2 and OpenSC (PKCS#11 token and pkcs11-tool), etcd 3.4 server and client, openssl, age, curl.
set -euo pipefail
need=()
command -v softhsm2-util >/dev/null || need+=(softhsm2)
command -v pkcs11-tool   >/dev/null || need+=(opensc)
command -v etcd          >/dev/null || need+=(etcd-server)
command -v etcdctl       >/dev/null || need+=(etcd-client)
command -v openssl       >/dev/null || need+=(openssl)
command -v age           >/dev/null || need+=(age)
command -v curl          >/dev/null || need+=(curl)
command -v cc            >/dev/null || need+=(gcc)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
  echo "cargo is missing: install Rust with rustup (https://rustup.rs) and re-run" >&2
  exit 1
fi
