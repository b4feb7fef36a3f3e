#!/usr/bin/env bash
# W3 from tokio: 200,000 keep-alive GETs over 50 connections to nginx (1 worker, a 13-byte
# file), from a tokio current-thread runtime through volley's threaded client, beside
# reqwest on the same runtime, volley's own loop and wrk (its CPU the wrk process's own);
# alternating rounds in one run, medians and ratios (peers/src/bin/keepalive.rs). Extra
# arguments go to keepalive. benches/all.sh runs the same as part of the README's run.
#
#   benches/w3_tokio.sh                    # 5 rounds; writes peers/w3-tokio-results.txt and .json
#   benches/w3_tokio.sh --rounds 3 -n 100000
set -u
cd "$(dirname "$0")/.."
. benches/nginx.sh
[ -n "$NGINX_PORT" ] || { say "nginx did not start: nothing to measure"; exit 1; }
TARGET=${CARGO_TARGET_DIR:-$PWD/peers/target}
CARGO_TARGET_DIR=$TARGET cargo build --release --manifest-path peers/Cargo.toml --bin keepalive || exit 1
{
    echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(git rev-parse --short HEAD) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# benches/w3_tokio.sh $*"
    "$TARGET/release/keepalive" --port "$NGINX_PORT" --path /small.txt -c 50 -n 200000 \
        --rounds 5 --clients volley,volley-tokio,volley-tokio-batch,reqwest,wrk \
        --json peers/w3-tokio-results.json "$@"
} 2>&1 | tee peers/w3-tokio-results.txt
