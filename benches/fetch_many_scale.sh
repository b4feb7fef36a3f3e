#!/usr/bin/env bash
# fetch_many at scale: a million URLs from a file (-i) with one JSON line each (-o), over ten
# loopback addresses, and the same count as URL arguments (-n), for the requests per second
# of each and the peak RSS of the file mode, which must stay flat in the number of lines.
#
#   bash benches/fetch_many_scale.sh                 # 1,000,000 URLs, 100 in flight
#   LINES=200000 bash benches/fetch_many_scale.sh    # a shorter run
#   BASE=/path/to/older/fetch_many bash benches/fetch_many_scale.sh   # and beside an older build
#
# Settings (environment): LINES (1000000), HOSTS (10: 127.0.0.1 to 127.0.0.HOSTS),
# CONCURRENCY (100), URL_PATH (/bytes/0), RSS_LIMIT_MB (64: the file mode's peak RSS must
# be below it, else the script exits 1), BASE (an older build of fetch_many: the arguments
# mode is then run ROUNDS times (3) with each binary in turn, and the file mode (-i, -o) of
# this build with them, and the medians compared).
#
# One test server (the httpbin example, one thread) listens on 0.0.0.0 and a free port, so it
# answers every 127.0.0.x: a socket bound to 127.0.0.1 answers only 127.0.0.1. All traffic
# stays on loopback. Needs GNU time (/usr/bin/time; `apt-get install time`) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

LINES="${LINES:-1000000}"
HOSTS="${HOSTS:-10}"
CONCURRENCY="${CONCURRENCY:-100}"
URL_PATH="${URL_PATH:-/bytes/0}"
RSS_LIMIT_MB="${RSS_LIMIT_MB:-64}"
target="${CARGO_TARGET_DIR:-target}"

if [ ! -x /usr/bin/time ]; then
    echo "error: /usr/bin/time (GNU time) is missing: apt-get install time" >&2
    exit 1
fi
if [ "$HOSTS" -lt 1 ] || [ "$HOSTS" -gt 254 ]; then
    echo "error: HOSTS must be 1 to 254" >&2
    exit 1
fi

cargo build --release --example fetch_many --example httpbin
fetch_many="$target/release/examples/fetch_many"
httpbin="$target/release/examples/httpbin"

work=$(mktemp -d "${TMPDIR:-/tmp}/fetch-many-scale.XXXXXX")
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

"$httpbin" --host 0.0.0.0 --port 0 >"$work/httpbin.log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 1 100); do # up to 10 s
    port=$(sed -n 's|^volley-httpbin listening on http://0\.0\.0\.0:\([0-9]*\)/.*|\1|p' "$work/httpbin.log")
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "error: the httpbin example did not start:" >&2
    cat "$work/httpbin.log" >&2
    exit 1
fi

# URL i goes to 127.0.0.(i mod HOSTS + 1); ?i=... makes every URL distinct.
awk -v n="$LINES" -v hosts="$HOSTS" -v port="$port" -v path="$URL_PATH" \
    'BEGIN { for (i = 0; i < n; i++) printf "http://127.0.0.%d:%d%s?i=%d\n", i % hosts + 1, port, path, i }' \
    >"$work/urls.txt"
echo "server: the httpbin example on 0.0.0.0:$port; $LINES URLs over $HOSTS addresses" \
    "($(du -h "$work/urls.txt" | cut -f1) of input), $CONCURRENCY in flight"

# Runs fetch_many under GNU time with the given arguments; prints one row of the table.
run() {
    local name=$1
    shift
    local status=0
    /usr/bin/time -v "$fetch_many" --json "$@" >"$work/$name.json" 2>"$work/$name.time" || status=$?
    python3 - "$name" "$work/$name.json" "$work/$name.time" "$status" <<'EOF'
import json, re, sys
name, summary, timing, status = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
text = open(timing).read()
rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
cpu = sum(float(re.search(rf"{k} time \(seconds\): ([\d.]+)", text).group(1)) for k in ("User", "System"))
try:
    s = json.load(open(summary))
except ValueError:
    print(f"{name}: no summary (exit {status}); its stderr:\n{text}")
    sys.exit(1)
print(f"{name:<12} {s['requests']:>9} {s['ok']:>9} {s['failed']:>7} {s['elapsed_s']:>9.2f} "
      f"{s['requests_per_s']:>9.0f} {cpu:>8.2f} {rss_kb / 1024:>9.1f}   exit {status}")
open(summary + ".rss", "w").write(str(rss_kb))
EOF
    return "$status"
}

printf '\n%-12s %9s %9s %7s %9s %9s %8s %9s\n' mode requests ok failed seconds "req/s" "cpu s" "RSS MB"
file_status=0
run file -i "$work/urls.txt" -o "$work/out.jsonl" -c "$CONCURRENCY" || file_status=$?
urls=()
for h in $(seq 1 "$HOSTS"); do
    urls+=("http://127.0.0.$h:$port$URL_PATH?i={n}")
done
arguments_status=0
run arguments -n "$LINES" -c "$CONCURRENCY" "${urls[@]}" || arguments_status=$?

if [ -n "${BASE:-}" ]; then
    # Today's binary beside an older one, in turn, for the ratio of their requests per second.
    echo
    echo "arguments mode, this build (new) beside BASE=$BASE (base), in turn:"
    for round in $(seq 1 "${ROUNDS:-3}"); do
        for who in new new-file base; do
            binary="$fetch_many"
            [ "$who" = base ] && binary="$BASE"
            if [ "$who" = new-file ]; then
                "$binary" --json -i "$work/urls.txt" -o "$work/round.jsonl" -c "$CONCURRENCY" \
                    >"$work/$who-$round.json"
            else
                "$binary" --json -n "$LINES" -c "$CONCURRENCY" "${urls[@]}" >"$work/$who-$round.json"
            fi
            python3 -c 'import json,sys; print(sys.argv[1], sys.argv[2], "%.0f" % json.load(open(sys.argv[3]))["requests_per_s"])' \
                "$round" "$who" "$work/$who-$round.json"
        done
    done | tee "$work/rounds.txt"
    python3 - "$work/rounds.txt" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
med = {who: statistics.median(float(r[2]) for r in rows if r[1] == who) for who in ("new", "new-file", "base")}
print(f"median req/s: new {med['new']:.0f}, new-file {med['new-file']:.0f}, base {med['base']:.0f}; "
      f"new/base {med['new'] / med['base']:.3f}, new-file/base {med['new-file'] / med['base']:.3f}")
EOF
fi

lines=$(wc -l <"$work/out.jsonl")
rss_kb=$(cat "$work/file.json.rss")
echo
echo "-o: $lines lines ($(du -h "$work/out.jsonl" | cut -f1)) for $LINES URLs"
fail=0
if [ "$file_status" -ne 0 ] || [ "$arguments_status" -ne 0 ]; then
    echo "FAIL: fetch_many exited $file_status (file) and $arguments_status (arguments)" >&2
    fail=1
fi
if [ "$lines" -ne "$LINES" ]; then
    echo "FAIL: -o has $lines lines, not $LINES" >&2
    fail=1
fi
if [ "$rss_kb" -ge $((RSS_LIMIT_MB * 1024)) ]; then
    echo "FAIL: peak RSS of the file mode $((rss_kb / 1024)) MB >= $RSS_LIMIT_MB MB" >&2
    fail=1
else
    echo "ok: peak RSS of the file mode $((rss_kb / 1024)) MB < $RSS_LIMIT_MB MB"
fi
exit "$fail"
