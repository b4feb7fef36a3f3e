#!/usr/bin/env bash
# DNS on the reactor under a crawl over many hosts: the release `crawl` example in its
# `--hosts` mode (examples/crawl.rs), 1,000 pages over 200 host names `h{k}.web.test`, all on
# loopback: the embedded HTTP server, and the embedded DNS server answering `*.web.test` after
# `--dns-delay` ms (0, 2 and 20: the same host, a resolver nearby, one further away), 3 runs
# each. Prints each run's wall time, crawl time, thread count and DNS section (lookups and
# how they were answered, queries sent and saved by the cache and coalescing, lookup latency
# seen by the client), then the medians per delay.
#
#   benches/dns_crawl.sh
#   RUNS=5 DELAYS="2 50" HOSTS=500 benches/dns_crawl.sh
#
# Settings: HOSTS (200), WORKERS (50), RUNS (3), DELAYS ("0 2 20", milliseconds).
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${HOSTS:-200}
WORKERS=${WORKERS:-50}
RUNS=${RUNS:-3}
DELAYS=${DELAYS:-"0 2 20"}

cargo build --release --quiet --example crawl
BIN=target/release/examples/crawl
WORK=$(mktemp -d /tmp/volley-dns-crawl.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# The median of the numbers on stdin, one a line.
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "crawl --hosts $HOSTS -w $WORKERS: $((HOSTS * 5)) pages over $HOSTS host names, $RUNS runs per DNS delay"
echo "($(nproc) CPUs, $(uname -sr))"
for delay in $DELAYS; do
    for run in $(seq 1 "$RUNS"); do
        out="$WORK/$delay-$run.txt"
        started=$(date +%s%N)
        if ! "$BIN" --hosts "$HOSTS" -w "$WORKERS" --dns-delay "$delay" >"$out" 2>&1; then
            echo "run failed (--dns-delay $delay, run $run):" >&2
            tail -20 "$out" >&2
            exit 1
        fi
        ended=$(date +%s%N)
        wall=$(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
        echo "$wall" >"$WORK/$delay-$run.wall"
        echo
        echo "=== --dns-delay $delay ms, run $run: wall $wall s (process, start to exit)"
        grep -E '^  (pages|elapsed|threads) ' "$out"
        sed -n '/^dns /,$p' "$out"
    done
done

echo
echo "=== medians over $RUNS runs"
printf '%-6s %8s %8s %8s %8s %8s %8s %8s %8s %8s %8s %8s %9s\n' \
    delay wall_s crawl_s lookups cache coalesce queries saved p50_ms p90_ms p99_ms max_ms asked_ms
for delay in $DELAYS; do
    files=("$WORK/$delay"-*.txt)
    field() { # field LINE-LABEL AWK-EXPRESSION: the median of that value over the runs
        for f in "${files[@]}"; do
            grep -E "^  $1 " "$f" | awk "{ print $2 }"
        done | median
    }
    wall=$(cat "$WORK/$delay"-*.wall | median)
    crawl=$(field elapsed '$2')
    lookups=$(field lookups '$2')
    cache=$(field lookups '$8')
    coalesced=$(field lookups '$11')
    queries=$(field queries '$2')
    saved=$(field saved 'substr($5, 2, length($5) - 4)')
    p50=$(field latency '$3')
    p90=$(field latency '$6')
    p99=$(field latency '$9')
    max=$(field latency '$12')
    asked=$(field latency '$(NF - 1)')
    printf '%-6s %8s %8s %8s %8s %8s %8s %7s%% %8s %8s %8s %8s %9s\n' \
        "${delay}ms" "$wall" "$crawl" "$lookups" "$cache" "$coalesced" "$queries" "$saved" \
        "$p50" "$p90" "$p99" "$max" "$asked"
done
echo "(wall: the process; crawl: the crawl alone; lookups: asked by the client; cache, coalesce:"
echo " answered from the resolver's cache, or by a lookup of the same name in flight; queries:"
echo " sent to the DNS server; saved: of 2 per lookup; p50..max: every lookup as the client saw"
echo " it; asked: the mean of the lookups that queried the server)"
