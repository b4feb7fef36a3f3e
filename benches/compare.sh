#!/usr/bin/env bash
# volley beside its peers (reqwest, Python aiohttp, a serial blocking client) on loopback:
# see peers/src/bin/compare.rs for the workloads and how they are measured.
#
#   benches/compare.sh                 # everything: W0..W3, 3 rounds (1 for W0 and W2)
#   benches/compare.sh --quick         # shorter delays and counts, 1 round
#   benches/compare.sh --workloads W1,W3 --rounds 5
#   benches/compare.sh --workloads S1k,S10k,S30k --json peers/scaling.json   # scaling study
#
# Arguments go to the compare binary. What cannot be installed is skipped with a note:
# - Python aiohttp, into a venv (VOLLEY_VENV, default /tmp/volley-compare-venv), if python3 is here;
# - nginx (W3) and wrk (W3's ceiling) with apt-get, if missing.
# Writes peers/results.json and docs/perf.svg.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
say() { echo "compare.sh: $*" >&2; }

# --- Python aiohttp -----------------------------------------------------------------------
VENV=${VOLLEY_VENV:-/tmp/volley-compare-venv}
PY_ARGS=()
if command -v python3 >/dev/null; then
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV" || say "python3 -m venv failed"
    fi
    if [ -x "$VENV/bin/python" ]; then
        if ! "$VENV/bin/python" -c 'import aiohttp' 2>/dev/null; then
            "$VENV/bin/pip" install -q aiohttp || say "pip install aiohttp failed"
        fi
        if "$VENV/bin/python" -c 'import aiohttp' 2>/dev/null; then
            PY_ARGS=(--python "$VENV/bin/python")
        fi
    fi
fi
[ ${#PY_ARGS[@]} -eq 0 ] && say "no Python aiohttp: that client is skipped"

# --- nginx (W3; benches/nginx.sh) and wrk (W3's ceiling) ---------------------------------
. benches/nginx.sh
command -v wrk >/dev/null || apt_install wrk || say "cannot install wrk: W3 has no ceiling"
[ ${#NGINX_ARGS[@]} -eq 0 ] && say "no nginx: W3 is skipped"

# --- Build and run ------------------------------------------------------------------------
TARGET=${CARGO_TARGET_DIR:-$ROOT/peers/target}
CARGO_TARGET_DIR=$TARGET cargo build --release --manifest-path peers/Cargo.toml --bin compare || exit 1
# Descriptors: S30k needs ~30k in the client and as many in the server. As root, try to raise
# the hard limit to fs.nr_open first (refused without CAP_SYS_RESOURCE, e.g. in some containers:
# compare then skips what does not fit, with a note), then the soft limit to the hard one.
if [ "$(id -u)" = 0 ]; then
    ulimit -Hn "$(cat /proc/sys/fs/nr_open 2>/dev/null || echo 1048576)" 2>/dev/null
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null
"$TARGET/release/compare" "${PY_ARGS[@]}" "${NGINX_ARGS[@]}" \
    --json "$ROOT/peers/results.json" --svg "$ROOT/docs/perf.svg" "$@"
