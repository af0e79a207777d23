#!/usr/bin/env bash
# Installs the Debian packages cetcd needs to build, test and benchmark, only those missing.
# Safe to run again; needs root (or sudo) only when something is missing.
set -euo pipefail

PKGS=(build-essential pkg-config clang libclang-rt-14-dev
      libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler libcjson-dev libyaml-dev
      libcurl4-openssl-dev libcmocka-dev libssl-dev liblmdb-dev libwebsockets-dev libcrypt-dev
      etcd-server etcd-client python3-etcd3 python3-grpcio python3-websocket
      patroni postgresql-15 python3-kubernetes python3-yaml nghttp2-client wrk hyperfine
      curl iproute2 iptables procps)

# kube-lite's tests drive kubectl: Debian's kubernetes-client unless one is installed already
# (another package's /usr/bin/kubectl would conflict with it).
command -v kubectl >/dev/null 2>&1 || PKGS+=(kubernetes-client)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
