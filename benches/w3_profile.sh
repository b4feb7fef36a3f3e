#!/usr/bin/env bash
# W3 profile (issue 18: profile first): volley's fetch_many (one loop, `-n 200000 -c 50`)
# beside wrk (`-t1 -c50`), 50 keep-alive connections to nginx (1 worker, 13-byte file), on
# this machine's 2 cores: requests/s, CPU per request and context switches per request
# (perf stat), syscalls per request (strace -c -f), and where volley's CPU goes (perf record,
# the top symbols). Needs perf (apt linux-perf), wrk and strace.
#
#   bash benches/w3_profile.sh | tee benches/w3-profile.txt
set -u
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --example fetch_many >&2
source benches/nginx.sh
[ -n "$NGINX_PORT" ] || exit 1
URL="http://127.0.0.1:$NGINX_PORT/small.txt"
FM="$target/release/examples/fetch_many"
N=200000
echo "== perf stat (task-clock, context switches), $N requests"
for r in 1 2 3; do
  perf stat -e task-clock,context-switches -x, -o /tmp/w3-v.stat $FM -n $N -c 50 --json "$URL" > /tmp/w3-v.json
  v_rps=$(python3 -c 'import json; print(round(json.load(open("/tmp/w3-v.json"))["requests_per_s"]))')
  v_cpu=$(grep task-clock /tmp/w3-v.stat | cut -d, -f1); v_cs=$(grep context-switches /tmp/w3-v.stat | cut -d, -f1)
  perf stat -e task-clock,context-switches -x, -o /tmp/w3-w.stat wrk -t1 -c50 -d3s "$URL" > /tmp/w3-w.txt
  w_req=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' /tmp/w3-w.txt); w_rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' /tmp/w3-w.txt)
  w_cpu=$(grep task-clock /tmp/w3-w.stat | cut -d, -f1); w_cs=$(grep context-switches /tmp/w3-w.stat | cut -d, -f1)
  python3 -c "
v_rps,v_cpu,v_cs,w_req,w_rps,w_cpu,w_cs=$v_rps,$v_cpu,$v_cs,$w_req,$w_rps,$w_cpu,$w_cs
n=$N
print(f'round $r: volley {v_rps:.0f} req/s, {v_cpu*1000/n:.2f} us CPU/req, {v_cs/n:.3f} cs/req | wrk {w_rps:.0f} req/s, {w_cpu*1000/w_req:.2f} us CPU/req, {w_cs/w_req:.3f} cs/req | ratio {v_rps/w_rps:.2f} req/s, {(v_cpu/n)/(w_cpu/w_req):.2f} CPU/req')"
done
echo "== strace -c -f: syscalls per request (50,000 requests; wrk for 1 s)"
strace -c -f -o /tmp/w3-v.strace $FM -n 50000 -c 50 --json "$URL" > /dev/null
strace -c -f -o /tmp/w3-w.strace wrk -t1 -c50 -d1s "$URL" > /tmp/w3-w1.txt
w_req=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' /tmp/w3-w1.txt)
echo "volley (50000 requests):"; head -14 /tmp/w3-v.strace
echo "wrk ($w_req requests):"; head -12 /tmp/w3-w.strace
echo "== perf record: volley's CPU by symbol, $N requests (self time, top 30)"
perf record -q -F 4000 -o /tmp/w3-v.data $FM -n $N -c 50 --json "$URL" > /dev/null 2>&1
perf report -i /tmp/w3-v.data --stdio --no-children -g none --sort dso,symbol --percent-limit 0.6 2>/dev/null \
    | grep -v '^#' | grep -v '^$' | sed 's/ *- *- *$//; s/ *$//' | head -30
echo "== the same, by shared object"
perf report -i /tmp/w3-v.data --stdio --no-children -g none --sort dso 2>/dev/null | grep -v '^#' | grep -v '^$' | sed 's/ *$//' | head -6
