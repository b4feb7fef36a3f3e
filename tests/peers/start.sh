#!/usr/bin/env bash
# Real peers for tests/peers.rs: nginx, python's `http.server` and tests/peers/raw_http10.py,
# each on a free port of 127.0.0.1, serving the files that tests/peers/files.py writes to a
# temp dir (sizes 0 B to 16 MiB, pseudo-random from a fixed seed, with a MANIFEST).
#
#   bash tests/peers/start.sh     start them, print the variables, serve until Ctrl-C
#   source tests/peers/start.sh   (as .ci/run does) only defines the functions below:
#     peers_install_nginx         apt-get install nginx if it is missing (root only)
#     peers_start                 start the servers and export PEER_FILES_DIR (the files),
#                                 NGINX_URL and NGINX_ACCESS_LOG, PYHTTP_URL, PYRAW_URL
#     peers_stop                  stop every server started, remove the temp dir, unset them
#
# Best effort, like the httpbin of .ci/run: a server that is missing or does not answer gets
# a warning and its variable stays unset, so that tests/peers.rs skips its tests. Every wait
# is bounded, every server listens on 127.0.0.1 only, and peers_start fails only if none came
# up. Needs python3 (PEERS_PYTHON to use another).

PEERS_SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PEERS_PYTHON=${PEERS_PYTHON:-python3}
PEERS_TMP=""
peers_nginx_pid=""
peers_pyhttp_pid=""
peers_pyraw_pid=""

peers__warn() { echo "peers: WARNING: $*" >&2; }

# The nginx binary, if there is one (Debian's is in /usr/sbin, often not on a user's PATH).
peers__nginx_bin() {
    command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; }
}

# A port of 127.0.0.1 that was free a moment ago.
peers__free_port() {
    "$PEERS_PYTHON" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# peers__wait URL PID: waits up to 10 s for URL to answer 2xx, while PID lives. No proxy.
peers__wait() {
    local url=$1 pid=$2 deadline=$((SECONDS + 10))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if "$PEERS_PYTHON" -c 'import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
opener.open(sys.argv[1], timeout=2).read()' "$url" 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.2
    done
    return 1
}

# peers__kill PID SIGNAL: sends SIGNAL, gives PID 5 s to exit, then SIGKILL; reaps it.
# Returns 1 if it took a SIGKILL.
peers__kill() {
    local pid=$1 sig=$2 killed=0 _
    kill "-$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        killed=1
    fi
    wait "$pid" 2>/dev/null || true
    return "$killed"
}

peers_install_nginx() {
    if peers__nginx_bin >/dev/null; then
        return 0
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        peers__warn "nginx is missing, and apt-get is not ours to run here"
        return 1
    fi
    echo "peers: installing nginx with apt-get"
    local log started=$SECONDS
    log=$(mktemp "${TMPDIR:-/tmp}/volley-apt.XXXXXX") || return 1
    local apt=(timeout 300 env DEBIAN_FRONTEND=noninteractive apt-get install -y -q
        --no-install-recommends nginx)
    if "${apt[@]}" >"$log" 2>&1 ||
        { timeout 300 apt-get update -q >>"$log" 2>&1 && "${apt[@]}" >>"$log" 2>&1; }; then
        echo "peers: nginx installed in $((SECONDS - started)) s"
    else
        tail -n 20 "$log" >&2 || true
    fi
    rm -f "$log"
    peers__nginx_bin >/dev/null
}

peers__stop_nginx() {
    local pid=$peers_nginx_pid kids kid
    [ -n "$pid" ] || return 0
    peers_nginx_pid=""
    # The worker outlives a master killed with SIGKILL: note it first. SIGTERM is nginx's
    # fast shutdown, which stops the worker too.
    kids=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null || true)
    if ! peers__kill "$pid" TERM; then
        for kid in $kids; do
            kill -KILL "$kid" 2>/dev/null || true
        done
    fi
}

peers__start_nginx() {
    local nginx dir=$PEERS_TMP/nginx port user="" errlog=() attempt
    nginx=$(peers__nginx_bin) || {
        peers__warn "nginx not found (apt-get install nginx)"
        return 1
    }
    mkdir -p "$dir/logs" "$dir/tmp" || return 1
    # As root, the worker would run as `nobody`, who may not reach a temp dir under /root.
    [ "$(id -u)" = 0 ] && user="user root;"
    # Since nginx 1.19.5: the startup error log too, not /var/log/nginx's.
    "$nginx" -h 2>&1 | grep -q -- ' -e ' && errlog=(-e "$dir/logs/error.log")
    for attempt in 1 2 3; do
        port=$(peers__free_port) || return 1
        # \$ are nginx's variables. The access log names each request's connection and its
        # number on it, for tests/peers.rs to see keep-alive from the server's side.
        cat >"$dir/nginx.conf" <<EOF || return 1
$user
worker_processes 1;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 256; }
http {
    types { application/octet-stream bin; text/plain txt; }
    default_type application/octet-stream;
    log_format peers '\$connection \$connection_requests "\$request" \$status \$body_bytes_sent';
    access_log $dir/logs/access.log peers;
    client_body_temp_path $dir/tmp/client_body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    sendfile on;
    keepalive_timeout 30s;
    keepalive_requests 1000;
    server {
        listen 127.0.0.1:$port;
        server_name 127.0.0.1;
        root $PEER_FILES_DIR;
        autoindex on;
    }
}
EOF
        "$nginx" -p "$dir" -c "$dir/nginx.conf" ${errlog[@]+"${errlog[@]}"} \
            </dev/null >"$dir/logs/stderr.log" 2>&1 &
        peers_nginx_pid=$!
        if peers__wait "http://127.0.0.1:$port/MANIFEST" "$peers_nginx_pid"; then
            export NGINX_URL="http://127.0.0.1:$port"
            export NGINX_ACCESS_LOG="$dir/logs/access.log"
            echo "peers: nginx (pid $peers_nginx_pid, 1 worker) answers at $NGINX_URL"
            return 0
        fi
        peers__warn "nginx did not answer on port $port (attempt $attempt of 3):"
        tail -n 5 "$dir/logs/stderr.log" "$dir/logs/error.log" >&2 2>/dev/null || true
        local alive=0
        kill -0 "$peers_nginx_pid" 2>/dev/null && alive=1
        peers__stop_nginx
        # Only a lost race for the port is worth another try.
        [ "$alive" = 0 ] || return 1
    done
    return 1
}

# peers__start_python NAME PIDVAR URLVAR PATH ARGS...: runs python3 ARGS, where the port is
# written as {port}, until http://127.0.0.1:{port}PATH answers; retries on a lost port race.
peers__start_python() {
    local name=$1 pidvar=$2 urlvar=$3 path=$4 port pid attempt
    shift 4
    for attempt in 1 2 3; do
        port=$(peers__free_port) || return 1
        "$PEERS_PYTHON" "${@//\{port\}/$port}" </dev/null >"$PEERS_TMP/$name.log" 2>&1 &
        pid=$!
        printf -v "$pidvar" %s "$pid"
        if peers__wait "http://127.0.0.1:$port$path" "$pid"; then
            export "$urlvar=http://127.0.0.1:$port"
            echo "peers: $name (pid $pid) answers at http://127.0.0.1:$port"
            return 0
        fi
        peers__warn "$name did not answer on port $port (attempt $attempt of 3):"
        tail -n 5 "$PEERS_TMP/$name.log" >&2 || true
        local alive=0
        kill -0 "$pid" 2>/dev/null && alive=1
        peers__kill "$pid" TERM || true
        printf -v "$pidvar" %s ""
        [ "$alive" = 0 ] || return 1
    done
    return 1
}

peers_stop() {
    peers__stop_nginx
    if [ -n "$peers_pyhttp_pid" ]; then
        peers__kill "$peers_pyhttp_pid" TERM || true
        peers_pyhttp_pid=""
    fi
    if [ -n "$peers_pyraw_pid" ]; then
        peers__kill "$peers_pyraw_pid" TERM || true
        peers_pyraw_pid=""
    fi
    if [ -n "$PEERS_TMP" ]; then
        rm -rf "$PEERS_TMP"
        PEERS_TMP=""
    fi
    unset PEER_FILES_DIR NGINX_URL NGINX_ACCESS_LOG PYHTTP_URL PYRAW_URL
}

peers_start() {
    peers_stop # a second start replaces the first
    if ! command -v "$PEERS_PYTHON" >/dev/null; then
        peers__warn "no $PEERS_PYTHON: no files to serve, no peers"
        return 1
    fi
    local started=$SECONDS up=0 exe
    # The interpreter itself, not a launcher such as pyenv's shim: it runs a dozen times.
    exe=$("$PEERS_PYTHON" -c 'import sys; print(sys.executable)') && [ -x "$exe" ] &&
        PEERS_PYTHON=$exe
    PEERS_TMP=$(mktemp -d "${TMPDIR:-/tmp}/volley-peers.XXXXXX") || return 1
    chmod 755 "$PEERS_TMP" || return 1
    if ! "$PEERS_PYTHON" "$PEERS_SCRIPT_DIR/files.py" "$PEERS_TMP/files"; then
        peers__warn "tests/peers/files.py failed"
        return 1
    fi
    export PEER_FILES_DIR="$PEERS_TMP/files"
    echo "peers: files in $PEER_FILES_DIR: $(awk '!/^#/ { printf "%s%s (%s B)", sep, $1, $2
        sep = ", " }' "$PEER_FILES_DIR/MANIFEST")"

    if peers__start_nginx; then
        up=$((up + 1))
    else
        peers__warn "no nginx: its tests in tests/peers.rs will SKIP"
    fi
    if peers__start_python pyhttp peers_pyhttp_pid PYHTTP_URL /MANIFEST \
        -m http.server --bind 127.0.0.1 --directory "$PEER_FILES_DIR" '{port}'; then
        up=$((up + 1))
    else
        peers__warn "no python http.server: its tests in tests/peers.rs will SKIP"
    fi
    if peers__start_python pyraw peers_pyraw_pid PYRAW_URL /close/MANIFEST \
        "$PEERS_SCRIPT_DIR/raw_http10.py" --bind 127.0.0.1 --port '{port}' \
        --directory "$PEER_FILES_DIR"; then
        up=$((up + 1))
    else
        peers__warn "no raw_http10.py: its tests in tests/peers.rs will SKIP"
    fi
    echo "peers: $up of 3 servers up in $((SECONDS - started)) s"
    [ "$up" -gt 0 ]
}

# Run rather than sourced: start, print the variables, serve until Ctrl-C or SIGTERM.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -u
    trap peers_stop EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    peers_start || exit 1
    echo
    echo "# for tests/peers.rs, in another shell:"
    for var in PEER_FILES_DIR NGINX_URL NGINX_ACCESS_LOG PYHTTP_URL PYRAW_URL; do
        [ -n "${!var:-}" ] && echo "export $var=${!var}"
    done
    echo "cargo test --test peers"
    echo "# serving until Ctrl-C"
    wait # for the servers: they run until peers_stop
fi
