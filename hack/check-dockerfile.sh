#!/usr/bin/env bash
# Checks the Dockerfile offline (no Docker engine needed), on a Debian 12 machine with apt lists:
#   - the stages build, cetcd and cetcd-operator exist, from debian:12 / debian:12-slim, the
#     runtime ones as user 10001 with the expected ENTRYPOINT (and EXPOSE/VOLUME for cetcd);
#   - every package a stage installs is a Debian 12 package (apt-cache show / policy);
#   - the build stage installs only packages hack/deps.sh also installs (one list to maintain);
#   - every shared library `ldd` reports for bin/cetcd and bin/cetcdctl (stage cetcd) and
#     bin/cetcd-operator (stage cetcd-operator; skipped while it is not built) belongs to a
#     package that stage ends up with: the listed packages, their dependencies (apt-cache
#     depends --recurse), or the Essential packages and apt that debian:12-slim starts with.
# Prints `ok`/`not ok` per check and `N passed, M failed`; exits 1 on any failure.
#   hack/check-dockerfile.sh [Dockerfile]
set -uo pipefail
cd "$(dirname "$0")/.."
DOCKERFILE=${1:-Dockerfile}
pass=0
fails=0

ok() { pass=$((pass + 1)); echo "ok - $*"; }
bad() { fails=$((fails + 1)); echo "not ok - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

# The Dockerfile with continuation lines joined and comments dropped.
logical_lines() {
  sed -e 's/^[[:space:]]*#.*$//' "$DOCKERFILE" | awk '
    { line = line $0 }
    /\\[[:space:]]*$/ { sub(/\\[[:space:]]*$/, " ", line); next }
    { if (line ~ /[^[:space:]]/) print line; line = "" }'
}

# Lines of one stage (FROM ... AS <stage> up to the next FROM), the FROM line included.
stage_lines() {
  logical_lines | awk -v s="$1" '
    toupper($1) == "FROM" { cur = (tolower($(NF-1)) == "as") ? $NF : "" }
    cur == s'
}

# Package names after `apt-get install` in the stage's RUN lines (options skipped).
stage_packages() {
  stage_lines "$1" | grep -E '^RUN' | awk '{
    for (i = 1; i <= NF; i++) {
      if ($i == "install" && $(i-1) == "apt-get") { on = 1; continue }
      if (on && ($i == "&&" || $i == ";" || $i == "||")) on = 0
      if (on && $i !~ /^-/) print $i
    } }' | sort -u
}

is_debian12() { grep -q '^VERSION_ID="12"' /etc/os-release; }

pkg_in_debian12() {
  local policy
  apt-cache show --no-all-versions "$1" >/dev/null 2>&1 || return 1
  policy=$(apt-cache policy "$1" 2>/dev/null)
  grep -Eq 'Candidate: [^(]' <<<"$policy"
}

# Every package reachable from the arguments through Depends/Pre-Depends.
closure() {
  apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "$@" 2>/dev/null | grep -v '^[[:space:]]' | tr -d '<>' | sort -u
}

# What debian:12-slim has before any apt-get install: Essential packages and apt.
base_packages() {
  closure apt $(dpkg-query -W -f='${Package} ${Essential}\n' | awk '$2 == "yes" {print $1}')
}

# The Debian package that owns a library path (merged /usr: try both spellings).
owner_of() {
  local p=$1 r alt
  r=$(readlink -f "$p")
  for alt in "$p" "$r" "${p#/usr}" "${r#/usr}" "/usr$p" "/usr$r"; do
    dpkg -S "$alt" 2>/dev/null | head -1 | cut -d: -f1 && return 0
  done
  return 1
}

check_stage_structure() {
  local st=$1 from=$2 entry=$3
  check "stage $st exists, FROM $from" \
    bash -c "stage_lines $st | head -1 | grep -Eq '^FROM +$from +AS +$st\$'"
  [ "$st" = build ] && return
  check "stage $st runs as user 10001" \
    bash -c "stage_lines $st | grep -Eq '^USER +10001(:10001)?\$'"
  check "stage $st ENTRYPOINT [\"$entry\"]" \
    bash -c "stage_lines $st | grep -Fq 'ENTRYPOINT [\"$entry\"]'"
}

check_packages_exist() {
  local st=$1 p
  for p in $(stage_packages "$st"); do
    check "stage $st: $p is a Debian 12 package" pkg_in_debian12 "$p"
  done
}

check_build_matches_deps() {
  local p
  for p in $(stage_packages build); do
    check "build stage package $p is in hack/deps.sh" grep -Eq "(^|[ (])$p([ )]|\$)" hack/deps.sh
  done
}

# The libraries of binary bin are all provided in stage st.
check_binary() {
  local bin=$1 st=$2 have lib path pkg
  if [ ! -x "$bin" ]; then
    echo "# skip $bin: not built"
    return
  fi
  have=$( { closure $(stage_packages "$st"); printf '%s\n' "$BASE"; } | sort -u)
  [ -n "$have" ] || { bad "$bin: no package list for stage $st"; return; }
  if ldd "$bin" | grep -q 'not found'; then
    bad "$bin: ldd finds every library"
  fi
  while read -r lib path; do
    pkg=$(owner_of "$path") || { bad "$bin: $lib ($path) belongs to no Debian package"; continue; }
    if grep -qx "$pkg" <<<"$have"; then
      ok "$bin: $lib from $pkg, present in stage $st"
    else
      bad "$bin: $lib from $pkg, missing in stage $st"
    fi
  done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}')
}

export DOCKERFILE
export -f logical_lines stage_lines
[ -f "$DOCKERFILE" ] || { echo "no $DOCKERFILE"; exit 1; }
if ! is_debian12; then
  echo "# this check needs a Debian 12 machine (its apt lists stand for the image's)"
  exit 1
fi
BASE=$(base_packages)

check_stage_structure build 'debian:12' ''
check_stage_structure cetcd 'debian:12-slim' /usr/local/bin/cetcd
check_stage_structure cetcd-operator 'debian:12-slim' /usr/local/bin/cetcd-operator
check "stage cetcd: EXPOSE 2379 2380 2381" bash -c "stage_lines cetcd | grep -Eq '^EXPOSE +2379 +2380 +2381\$'"
check "stage cetcd: VOLUME /var/lib/cetcd" bash -c "stage_lines cetcd | grep -Eq '^VOLUME +/var/lib/cetcd\$'"
check "build stage runs make all" bash -c "stage_lines build | grep -Eq '^RUN +make .*all'"
for st in build cetcd cetcd-operator; do
  check_packages_exist "$st"
done
check_build_matches_deps
check_binary bin/cetcd cetcd
check_binary bin/cetcdctl cetcd
check_binary bin/cetcd-operator cetcd-operator

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
