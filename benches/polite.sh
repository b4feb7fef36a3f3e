#!/usr/bin/env bash
# Rate-limited hosts: 600 URLs over 3 hosts (127.0.0.1-3) that each admit 20 requests in any
# one-second window and answer 429 with Retry-After (seconds on two, an HTTP-date on the
# third). volley's batch beside reqwest with a hand-written retry loop, with a per-host rate
# of 18/s ("rate") and without ("told"); medians over rounds (peers/src/bin/polite.rs).
# Extra arguments go to polite.
#
#   benches/polite.sh                 # 3 rounds; writes peers/polite-results.txt
#   benches/polite.sh --rounds 1 --clients volley
set -u
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-$PWD/peers/target}
CARGO_TARGET_DIR=$TARGET cargo build --release --manifest-path peers/Cargo.toml --bin polite || exit 1
{
    echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(git rev-parse --short HEAD) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# benches/polite.sh $*"
    "$TARGET/release/polite" --rounds 3 "$@"
} 2>&1 | tee peers/polite-results.txt
