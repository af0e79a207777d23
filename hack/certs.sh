#!/usr/bin/env bash
# certs.sh: makes a CA and server, peer and client certificates with the openssl CLI, for
# cetcd's (and etcd's) TLS flags, for tests and for users.
#
#   hack/certs.sh DIR [--ca-name NAME] [--hosts "127.0.0.1 localhost ..."] [--client-cn CN]...
#
# Writes into DIR (created; existing files are kept, so a second run reuses the CA):
#   ca.pem, ca-key.pem            the CA (CN=NAME, default "cetcd-ca"), 10 years
#   server.pem, server-key.pem    serverAuth+clientAuth, SANs = hosts (default 127.0.0.1 localhost ::1)
#   peer.pem, peer-key.pem        serverAuth+clientAuth, same SANs (peers are clients of each other)
#   client.pem, client-key.pem    clientAuth, CN=root or the first --client-cn (the user name
#                                 etcd takes with --client-cert-auth); <cn>.pem, <cn>-key.pem
#                                 for each further --client-cn
# Keys are EC P-256, unencrypted, mode 0600. Two runs with different DIR and --ca-name make two
# unrelated CAs (for "certificate from another CA" tests).
set -euo pipefail

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

[ $# -ge 1 ] || usage
dir=$1; shift
ca_name=cetcd-ca
hosts="127.0.0.1 localhost ::1"
client_cns=()
while [ $# -gt 0 ]; do
    case $1 in
        --ca-name) ca_name=$2; shift 2 ;;
        --hosts) hosts=$2; shift 2 ;;
        --client-cn) client_cns+=("$2"); shift 2 ;;
        *) usage ;;
    esac
done
[ ${#client_cns[@]} -gt 0 ] || client_cns=(root)

mkdir -p "$dir"
cd "$dir"
umask 077

san=""
for h in $hosts; do
    if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then san+="IP:$h,"; else san+="DNS:$h,"; fi
done
san=${san%,}

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

if [ ! -s ca.pem ] || [ ! -s ca-key.pem ]; then
    newkey ca-key.pem
    openssl req -x509 -new -key ca-key.pem -sha256 -days 3650 -subj "/O=cetcd/CN=$ca_name" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
        -out ca.pem 2>/dev/null
fi

# sign NAME CN EXTKEYUSAGE [SAN]
sign() {
    local name=$1 cn=$2 eku=$3 sans=${4:-} ext
    [ -s "$name.pem" ] && [ -s "$name-key.pem" ] && return 0
    newkey "$name-key.pem"
    openssl req -new -key "$name-key.pem" -subj "/O=cetcd/CN=$cn" -out "$name.csr" 2>/dev/null
    ext=$(mktemp)
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$eku"
        [ -n "$sans" ] && echo "subjectAltName=$sans"
    } >"$ext"
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
        -days 825 -sha256 -extfile "$ext" -out "$name.pem" 2>/dev/null
    rm -f "$ext" "$name.csr"
}

sign server "${ca_name}-server" serverAuth,clientAuth "$san"
sign peer "${ca_name}-peer" serverAuth,clientAuth "$san"
sign client "${client_cns[0]}" clientAuth
for cn in "${client_cns[@]:1}"; do
    sign "$cn" "$cn" clientAuth
done
chmod 0644 ./*.pem
chmod 0600 ./*-key.pem
echo "certs.sh: CA $ca_name and certificates in $(pwd)"
