#!/usr/bin/env bash
# Builds and runs every libFuzzer target tests/fuzz/fuzz_*.c for SECONDS each (default 20);
# fails if any target finds a crash, leak, sanitizer report or timeout.
#   tests/fuzz/run.sh [SECONDS] [fuzz_name ...]
# Each target is compiled with clang -fsanitize=fuzzer,address,undefined together with
# common/*.c, the protobuf-c code generated from proto/*.proto into build-fuzz/gen, and the
# sources it names itself in comment lines of its own file (`//` lines, or ` * ` lines inside
# a block comment; several lines add up):
#   // FUZZ_SOURCES: server/wal/*.c server/api/grpcframe.c     (globs, relative to the repo)
#   // FUZZ_PKGS: lmdb                                          (extra pkg-config packages)
# A target that fails to build counts as failed; the others still run.
# Corpus: build-fuzz/corpus/<target> (kept between runs), seeded from tests/fuzz/seeds/<target>/
# when that directory exists. Crash inputs land in build-fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-20}
shift || true
OUT=build-fuzz
BASE_PKGS="libprotobuf-c libcjson"
CC=${FUZZ_CC:-clang}
mkdir -p "$OUT/gen" "$OUT/bin" "$OUT/corpus" "$OUT/artifacts"

# Regenerate the protobuf code when any .proto is newer than the generated files.
if [ ! -f "$OUT/gen/rpc.pb-c.c" ] || [ -n "$(find proto -name '*.proto' -newer "$OUT/gen/rpc.pb-c.c")" ]; then
    protoc-c --proto_path=proto --c_out="$OUT/gen" proto/*.proto
fi

# Words after "// KEY:" (or " * KEY:") on every such line of file $2.
directive() {
    sed -n -E "s@^[[:space:]]*(//|/?\*+)[[:space:]]*$1:[[:space:]]*@@p" "$2" | sed 's@\*/.*@@' | tr '\n' ' '
}

targets=()
if [ $# -gt 0 ]; then
    for t in "$@"; do targets+=("tests/fuzz/${t%.c}.c"); done
else
    targets=(tests/fuzz/fuzz_*.c)
fi

failed=()
for src in "${targets[@]}"; do
    name=$(basename "$src" .c)
    srcs=()
    missing=""
    for pattern in $(directive FUZZ_SOURCES "$src"); do
        # shellcheck disable=SC2206
        matches=($pattern)
        [ -e "${matches[0]}" ] || missing="$missing $pattern"
        srcs+=("${matches[@]}")
    done
    pkgs="$BASE_PKGS $(directive FUZZ_PKGS "$src")"
    bin="$OUT/bin/$name"
    echo "== build $name"
    if [ -n "$missing" ]; then
        echo "!! $name: no file matches:$missing" >&2
        failed+=("$name(build)")
        continue
    fi
    # shellcheck disable=SC2046
    if ! "$CC" -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -Wall -Wextra -Werror -Wno-missing-field-initializers -Wno-unused-parameter \
        -I. -Icommon -I"$OUT/gen" $(pkg-config --cflags $pkgs) \
        -o "$bin" "$src" "${srcs[@]}" common/*.c "$OUT"/gen/*.pb-c.c \
        $(pkg-config --libs $pkgs) -lpthread -lm -lcrypt 2> "$OUT/$name.build.log"; then
        tail -15 "$OUT/$name.build.log" >&2
        echo "!! $name did not build; does it declare its sources (// FUZZ_SOURCES: ...)?" >&2
        failed+=("$name(build)")
        continue
    fi
    corpus="$OUT/corpus/$name"
    mkdir -p "$corpus"
    dirs=("$corpus")
    [ -d "tests/fuzz/seeds/$name" ] && dirs+=("tests/fuzz/seeds/$name")
    echo "== run $name for ${secs}s"
    if ! "$bin" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$OUT/artifacts/$name-" "${dirs[@]}" > "$OUT/$name.log" 2>&1; then
        echo "!! $name FAILED; see $OUT/$name.log and $OUT/artifacts/$name-*" >&2
        tail -40 "$OUT/$name.log" >&2
        failed+=("$name")
    else
        grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$OUT/$name.log" | tail -2 || true
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: failures in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all ${#targets[@]} target(s) ran ${secs}s without findings"
