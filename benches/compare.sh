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

# --- nginx and wrk (W3) -------------------------------------------------------------------
apt_install() {
    command -v apt-get >/dev/null || return 1
    apt-get install -y "$@" >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y "$@" >/dev/null 2>&1; }
}
NGINX=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
if [ -z "$NGINX" ]; then
    apt_install nginx || say "cannot install nginx"
    NGINX=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
fi
command -v wrk >/dev/null || apt_install wrk || say "cannot install wrk: W3 has no ceiling"

NGINX_ARGS=()
NGINX_DIR=""
stop_nginx() {
    if [ -n "$NGINX_DIR" ] && [ -s "$NGINX_DIR/nginx.pid" ]; then
        kill "$(cat "$NGINX_DIR/nginx.pid")" 2>/dev/null
        sleep 0.5
    fi
    [ -n "$NGINX_DIR" ] && rm -rf "$NGINX_DIR"
}
trap stop_nginx EXIT
if [ -n "$NGINX" ]; then
    NGINX_DIR=$(mktemp -d /tmp/volley-nginx.XXXXXX)
    chmod 755 "$NGINX_DIR"
    mkdir -p "$NGINX_DIR/html" "$NGINX_DIR/logs"
    printf 'hello, world\n' > "$NGINX_DIR/html/small.txt"
    chmod -R a+rX "$NGINX_DIR"
    # A free port: let the kernel pick one, then give it to nginx.
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18088)
    USER_LINE=""
    [ "$(id -u)" = 0 ] && USER_LINE="user root;"
    cat > "$NGINX_DIR/nginx.conf" <<EOF
$USER_LINE
worker_processes 1;
daemon on;
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_DIR/logs/error.log warn;
worker_rlimit_nofile 4096;
events { worker_connections 2048; }
http {
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 60s;
    keepalive_requests 10000000;
    client_body_temp_path $NGINX_DIR/tmp_body;
    proxy_temp_path $NGINX_DIR/tmp_proxy;
    fastcgi_temp_path $NGINX_DIR/tmp_fastcgi;
    uwsgi_temp_path $NGINX_DIR/tmp_uwsgi;
    scgi_temp_path $NGINX_DIR/tmp_scgi;
    server {
        listen 127.0.0.1:$PORT backlog=4096;
        root $NGINX_DIR/html;
    }
}
EOF
    if "$NGINX" -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" 2>"$NGINX_DIR/start.err"; then
        sleep 0.3
        NGINX_ARGS=(--nginx-port "$PORT")
        say "nginx (1 worker) on 127.0.0.1:$PORT, pid $(cat "$NGINX_DIR/nginx.pid")"
    else
        say "nginx did not start: $(cat "$NGINX_DIR/start.err")"
    fi
fi
[ ${#NGINX_ARGS[@]} -eq 0 ] && say "no nginx: W3 is skipped"

# --- Build and run ------------------------------------------------------------------------
cargo build --release --manifest-path peers/Cargo.toml --bin compare || exit 1
# Descriptors: S30k needs ~30k in the client and as many in the server. As root, try to raise
# the hard limit to fs.nr_open first (refused without CAP_SYS_RESOURCE, e.g. in some containers:
# compare then skips what does not fit, with a note), then the soft limit to the hard one.
if [ "$(id -u)" = 0 ]; then
    ulimit -Hn "$(cat /proc/sys/fs/nr_open 2>/dev/null || echo 1048576)" 2>/dev/null
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null
"$ROOT/peers/target/release/compare" "${PY_ARGS[@]}" "${NGINX_ARGS[@]}" \
    --json "$ROOT/peers/results.json" --svg "$ROOT/docs/perf.svg" "$@"
