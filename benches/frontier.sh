#!/usr/bin/env bash
# The Redis frontier's numbers: one worker through Redis beside -i (1 s and zero delay), three
# workers with one killed (SIGKILL), and three workers at --rate 18 against hosts that admit
# 20 requests per second (benches/frontier.rs). Needs redis-server (apt-get install
# redis-server). Extra arguments go to the bench (--rounds R, --delayed N, --zero N).
#
#   bash benches/frontier.sh          # 3 rounds; writes docs/frontier-results.txt
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --features redis --example fetch_many
cargo build --release -p volley-benches --features redis --bin frontier
{
    echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(git rev-parse --short HEAD) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# bash benches/frontier.sh $*"
    "$target/release/frontier" --fetch-many "$target/release/examples/fetch_many" "$@"
} 2>&1 | tee docs/frontier-results.txt
