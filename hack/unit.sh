#!/usr/bin/env bash
# Builds one unit test from just the sources named, under ASan+UBSan, and runs it.
# For working on one module while others are mid-change:
#   hack/unit.sh tests/unit/test_wal.c server/wal/*.c [-- test args]
set -euo pipefail
cd "$(dirname "$0")/.."
make -s gen SAN=1 >/dev/null
test_src=$1; shift
srcs=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do srcs+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
name=$(basename "$test_src" .c)
out=build-dev/$name
mkdir -p build-dev
PKGS="libnghttp2 libprotobuf-c libcjson yaml-0.1 libcurl openssl lmdb libwebsockets"
cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-missing-field-initializers -O1 -g \
   -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
   -I. -Icommon -Iserver -Icontroller -Ibuild-asan/gen -Itests/unit $(pkg-config --cflags $PKGS) \
   -o "$out" "$test_src" "${srcs[@]}" common/*.c build-asan/gen/*.pb-c.c \
   $(pkg-config --libs $PKGS) -lcmocka -lpthread -lm -lcrypt
exec "$out" "$@"
