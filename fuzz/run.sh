#!/usr/bin/env bash
# Fuzzes one target of fuzz/ for a while:
#
#   fuzz/run.sh head 600              # the response head parser, 10 minutes
#   fuzz/run.sh body 600 -max_len=8192  # the body decoder; extra args go to libFuzzer
#   fuzz/run.sh dns 600               # the DNS response parser and TCP framing
#
# Installs cargo-fuzz if it is missing. Runs one fuzzing process (one core). New corpus
# entries go to fuzz/corpus/<target>/ (not committed); the committed seeds in
# fuzz/seeds/<target>/ and past finds in fuzz/regressions/<target>/ are read as well. A
# crash or mismatch is written to fuzz/artifacts/<target>/: minimise it with
# `RUSTC_BOOTSTRAP=1 cargo fuzz tmin <target> <file>` (from fuzz/), fix the bug, and keep the
# input in fuzz/regressions/<target>/ (the unit tests replay that directory) or inline in a
# unit test.
set -euo pipefail
cd "$(dirname "$0")"

usage() {
    echo "usage: fuzz/run.sh <head|body|dns> [seconds, default 600] [libFuzzer args...]" >&2
    exit 2
}
target=${1:-}
case $target in
head | body) dict=http.dict ;;
dns) dict=dns.dict ;;
*) usage ;;
esac
seconds=${2:-600}
[[ $seconds =~ ^[0-9]+$ ]] || usage
shift $(($# < 2 ? $# : 2))

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz needs a nightly compiler: it builds with unstable flags (-Zsanitizer=address,
# the sancov instrumentation options, -Zunstable-options for --cfg fuzzing). Only the stable
# toolchain is installed here and on CI, and none other can be fetched. RUSTC_BOOTSTRAP=1
# tells a stable rustc to accept unstable flags as nightly does (it is how the compiler
# builds its own standard library); stable ships the AddressSanitizer runtime for
# x86_64-unknown-linux-gnu, so the default `-s address` works. Only this script sets it:
# the main crate never needs it.
export RUSTC_BOOTSTRAP=1

mkdir -p "corpus/$target"
corpora=("corpus/$target" "seeds/$target")
if [[ -d regressions/$target ]] && [[ -n $(ls -A "regressions/$target") ]]; then
    corpora+=("regressions/$target")
fi

# -print_final_stats: executions, exec/s and coverage at the end, for the record.
exec cargo fuzz run "$target" "${corpora[@]}" -- \
    -max_total_time="$seconds" \
    -dict="$PWD/$dict" \
    -print_final_stats=1 \
    "$@"
