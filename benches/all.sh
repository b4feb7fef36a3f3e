#!/usr/bin/env bash
# Every comparison the README quotes, in one session, one after the other; then ONE raw file,
# benches/results/<UTC date>-<commit>.json, and the README's performance section regenerated
# from it (benches/report.py). CI checks that the README matches the newest such file; it
# never re-runs the benchmarks.
#
#   bash benches/all.sh              # the full run: ~20 minutes on 2 cores
#   ALL_QUICK=1 bash benches/all.sh  # a smoke run: short and marked "quick" (never rendered)
#
# What runs (each tool's own JSON goes into the raw file unchanged, under its key):
#   compare   benches/compare.sh --workloads W0,W1,W2,W3 --rounds 3 (plot: docs/perf.svg)
#   w3_tokio  peers keepalive: W3 (200,000 GETs, 50 connections, nginx with 1 worker) from a
#             tokio current-thread runtime through volley::threaded::Client, beside volley's
#             own loop, reqwest and wrk, 5 rounds
#   tls       peers tls: handshakes and keep-alive over TLS beside reqwest, 3 rounds
#   threads   volley-benches threads: a batch on 1 and 2 loop threads, 3 rounds
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=${ALL_QUICK:-}
OUT_DIR=${ALL_OUT_DIR:-$ROOT/benches/results}
TMP=$(mktemp -d /tmp/volley-all.XXXXXX)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PEERS_TARGET=${PEERS_TARGET_DIR:-$ROOT/peers/target}
say() { echo "all.sh: $*" >&2; }

commands=()
run() { # run CMD...: note the command, then run it
    commands+=("$*")
    say "$*"
    "$@" || { say "failed: $*"; exit 1; }
}

# The commit measured, and whether the tracked files differ from it, read before anything runs
# (compare redraws docs/perf.svg, a tracked file).
commit=$(git rev-parse HEAD)
short=$(git rev-parse --short HEAD)
dirty=$([ -z "$(git status --porcelain --untracked-files=no)" ] && echo false || echo true)

if [ -n "$QUICK" ]; then
    compare_args=(--quick --workloads W1,W2,W3 --rounds 1)
    ka_args=(-n 20000 --rounds 1)
    tls_args=(--handshakes 50 -c 50 -n 10000 --rounds 1)
    threads_args=(--rounds 1 --w2 1000 --tls 300)
else
    compare_args=(--workloads W0,W1,W2,W3 --rounds 3)
    ka_args=(-n 200000 --rounds 5)
    tls_args=(--handshakes 500 -c 50 -n 100000 --rounds 3)
    threads_args=(--rounds 3 --w2 10000 --tls 3000)
fi

# Build everything first, so that no build runs between measurements.
CARGO_TARGET_DIR=$PEERS_TARGET cargo build --release --manifest-path peers/Cargo.toml \
    --bin compare --bin keepalive --bin tls || exit 1
cargo build --release -p volley-benches --bin threads || exit 1

# 1. W0-W3 beside the peers.
run env CARGO_TARGET_DIR="$PEERS_TARGET" bash benches/compare.sh "${compare_args[@]}" \
    --json "$TMP/compare.json" --svg docs/perf.svg

# 2. W3 from tokio, with wrk (nginx with one worker, started here).
. benches/nginx.sh
[ -n "$NGINX_PORT" ] || { say "nginx did not start"; exit 1; }
run "$PEERS_TARGET/release/keepalive" --port "$NGINX_PORT" --path /small.txt -c 50 \
    "${ka_args[@]}" --clients volley,volley-tokio,volley-tokio-batch,reqwest,wrk \
    --json "$TMP/w3_tokio.json"
stop_nginx
NGINX_DIR=""

# 3. TLS beside reqwest.
run "$PEERS_TARGET/release/tls" "${tls_args[@]}" --json "$TMP/tls.json"

# 4. One loop or two.
run "$CARGO_TARGET_DIR/release/threads" "${threads_args[@]}" --json "$TMP/threads.json"

# The raw file: the machine, the date, the commit, the commands, and each tool's JSON.
mkdir -p "$OUT_DIR"
stamp=$(date -u +%Y-%m-%dT%H%MZ)
out="$OUT_DIR/$stamp-$short${QUICK:+-quick}.json"
printf '%s\n' "${commands[@]}" > "$TMP/commands.txt"
python3 - "$TMP" "$out" "$stamp" "$commit" "$dirty" "${QUICK:+true}" <<'PY' || exit 1
import json, os, platform, subprocess, sys
tmp, out, stamp, commit, dirty, quick = sys.argv[1:7]
def first(path, key):
    try:
        for line in open(path):
            if line.startswith(key):
                return line.split(':', 1)[1].strip()
    except OSError:
        return None
raw = {
    "date": stamp,
    "commit": commit,
    "dirty": dirty == "true",
    "quick": quick == "true",
    "command": "bash benches/all.sh" if quick != "true" else "ALL_QUICK=1 bash benches/all.sh",
    "machine": {
        "cores": int(subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or 0),
        "cpu": first("/proc/cpuinfo", "model name"),
        "memory": first("/proc/meminfo", "MemTotal"),
        "kernel": platform.release(),
        "rustc": subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip(),
    },
    "commands": open(os.path.join(tmp, "commands.txt")).read().splitlines(),
}
for key in ["compare", "w3_tokio", "tls", "threads"]:
    with open(os.path.join(tmp, key + ".json")) as f:
        raw[key] = json.load(f)
with open(out, "w") as f:
    json.dump(raw, f, indent=1)
    f.write("\n")
print("all.sh: wrote", out)
PY
rm -rf "$TMP"
if [ -z "$QUICK" ]; then
    python3 benches/report.py "$out"
else
    say "a quick run: the README is not regenerated from it"
fi
