#!/usr/bin/env bash
# Sourced by the benchmark scripts (compare.sh, w3_tokio.sh): installs nginx if missing and
# starts it on a free loopback port with ONE worker, serving small.txt ("hello, world\n", 13
# bytes) with keep-alive and no request limit. Sets NGINX_PORT (empty if nginx could not
# start) and NGINX_ARGS (`--nginx-port PORT` for the compare binary); stops it on exit.
say() { echo "${0##*/}: $*" >&2; }
apt_install() {
    command -v apt-get >/dev/null || return 1
    apt-get install -y "$@" >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y "$@" >/dev/null 2>&1; }
}
NGINX=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
if [ -z "$NGINX" ]; then
    apt_install nginx || say "cannot install nginx"
    NGINX=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
fi

NGINX_ARGS=()
NGINX_PORT=""
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
        NGINX_PORT=$PORT
        say "nginx (1 worker) on 127.0.0.1:$PORT, pid $(cat "$NGINX_DIR/nginx.pid")"
    else
        say "nginx did not start: $(cat "$NGINX_DIR/start.err")"
    fi
fi

