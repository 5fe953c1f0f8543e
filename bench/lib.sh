# Helpers shared by the benchmark scripts (sourced, not run).

# peak_rss PID WATCHED INTERVAL: the highest RSS (KiB) of process PID, sampled every
# INTERVAL seconds while process WATCHED (a load generator) runs.
peak_rss() {
    local pid=$1 watched=$2 interval=$3 peak=0 r
    while kill -0 "$watched" 2>/dev/null; do
        r=$(ps -o rss= -p "$pid") && [ "$r" -gt "$peak" ] && peak=$r
        sleep "$interval"
    done
    echo "$peak"
}

# start_nginx WORK ROOT PORT: nginx (2 workers, sendfile on, no access log) serving
# directory ROOT on 127.0.0.1:PORT, its config, pid and error log in WORK. Stop it with
# kill "$(cat "$WORK/nginx.pid")".
start_nginx() {
    local work=$1 root=$2 port=$3
    cat > "$work/nginx.conf" <<NGX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http { access_log off; sendfile on; server { listen 127.0.0.1:$port; root $root; } }
NGX
    nginx -c "$work/nginx.conf"
    sleep 0.3
}

# bench_workdir: builds the release binary ($BIN), makes a temp dir ($WORK, removed
# when the script exits, after stopping an nginx started in it with start_nginx) and
# picks a free loopback port ($PORT).
bench_workdir() {
    cargo build --release --quiet
    BIN=$PWD/target/release/cairn
    WORK=$(mktemp -d)
    chmod 755 "$WORK"
    trap bench_cleanup EXIT
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
}

bench_cleanup() {
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    sleep 0.3
    rm -rf "$WORK"
}

# timed_sync DIR FEED POLICY: a cold `cairn repo sync` of FEED with POLICY into a new
# data dir under DIR (removed afterwards); prints "SECONDS PEAK_RSS_MIB" (GNU time).
timed_sync() {
    local d=$1 feed=$2 policy=$3 secs rss
    mkdir -p "$d"
    cat > "$d/cairn.toml" <<TOML
[server]
data_dir = "$d/data"
[[repo]]
id = "bench"
feed = "$feed"
policy = "$policy"
TOML
    /usr/bin/time -f "%e %M" -o "$d/time.out" \
        "$BIN" --config "$d/cairn.toml" repo sync bench >/dev/null 2>"$d/err" \
        || { cat "$d/err" >&2; return 1; }
    read -r secs rss < "$d/time.out"
    rm -rf "$d"
    echo "$secs $((rss / 1024))"
}
