#!/usr/bin/env bash
# Serving benchmark: cairn vs nginx on the same files, same machine, same run.
#
# Starts `cairn serve` (a snapshot holding a ~6 KiB package and a 12 MiB package) and
# nginx (sendfile on, one worker per core, serving a directory with the same files) on
# free loopback ports, runs wrk against each for each file, and prints requests/s,
# throughput, p99 latency and the ratios.
#
# Usage: bench/serve.sh [seconds per run, default 10] [connections, default 64]
# Needs: cargo, nginx, wrk (apt-get install nginx wrk).
set -euo pipefail
DURATION=${1:-10}
CONNS=${2:-64}
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN=$PWD/target/release/cairn
WORK=$(mktemp -d)
chmod 755 "$WORK"
cleanup() {
    [ -n "${CAIRN_PID:-}" ] && kill "$CAIRN_PID" 2>/dev/null || true
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    sleep 0.5
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$BIN" generate "$WORK/rpms" --count 1 >/dev/null
"$BIN" generate "$WORK/rpms" --payload-bytes $((12 * 1024 * 1024)) >/dev/null
SMALL=$(basename "$(ls "$WORK"/rpms/gen-*.rpm)")
LARGE=$(basename "$(ls "$WORK"/rpms/large-*.rpm)")

cat > "$WORK/cairn.toml" <<TOML
[server]
data_dir = "$WORK/data"
listen = "127.0.0.1:0"
[[repo]]
id = "bench"
TOML
CAIRN_LOG=warn "$BIN" --config "$WORK/cairn.toml" import bench "$WORK/rpms" >/dev/null
CAIRN_LOG=warn "$BIN" --config "$WORK/cairn.toml" snapshot create bench --name s1 >/dev/null

# nginx serves the same bytes from a plain directory tree.
mkdir -p "$WORK/www/Packages/g" "$WORK/www/Packages/l" "$WORK/www/repodata"
cp "$WORK/rpms/$SMALL" "$WORK/www/Packages/g/"
cp "$WORK/rpms/$LARGE" "$WORK/www/Packages/l/"
chmod -R a+rX "$WORK/www"
NGINX_PORT=$(free_port)
cat > "$WORK/nginx.conf" <<NGX
worker_processes $(nproc);
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types { application/x-rpm rpm; }
    server {
        listen 127.0.0.1:$NGINX_PORT reuseport;
        root $WORK/www;
    }
}
NGX
nginx -c "$WORK/nginx.conf"

CAIRN_LOG=warn "$BIN" --config "$WORK/cairn.toml" serve > "$WORK/cairn.out" &
CAIRN_PID=$!
for _ in $(seq 1 100); do grep -q listening "$WORK/cairn.out" 2>/dev/null && break; sleep 0.1; done
CAIRN_ADDR=$(sed -n 's|listening on http://\(.*\)/|\1|p' "$WORK/cairn.out")

run_wrk() { # url -> "req/s bytes/s p99ms"
    wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "$1" 2>&1 | awk '
        /Requests\/sec/ {rps=$2}
        /Transfer\/sec/ {v=$2; u=v; sub(/[0-9.]+/,"",u); sub(/[A-Za-z]+/,"",v);
                         m=(u=="GB")?1073741824:(u=="MB")?1048576:(u=="KB")?1024:1; bps=v*m}
        / 99%/ {l=$2; if (l ~ /us$/) {sub(/us/,"",l); l=l/1000} else if (l ~ /ms$/) {sub(/ms/,"",l)} else if (l ~ /s$/) {sub(/s/,"",l); l=l*1000}; p99=l}
        END {printf "%s %.0f %s\n", rps, bps, p99}'
}

printf '%-8s %-7s %12s %12s %10s\n' file server req/s MiB/s p99_ms
declare -A R
for kind in small large; do
    if [ $kind = small ]; then f="Packages/g/$SMALL"; else f="Packages/l/$LARGE"; fi
    read -r crps cbps cp99 < <(run_wrk "http://$CAIRN_ADDR/repos/bench/s1/$f")
    read -r nrps nbps np99 < <(run_wrk "http://127.0.0.1:$NGINX_PORT/$f")
    printf '%-8s %-7s %12.0f %12.1f %10.2f\n' $kind cairn "$crps" "$(echo "$cbps/1048576" | bc -l)" "$cp99"
    printf '%-8s %-7s %12.0f %12.1f %10.2f\n' $kind nginx "$nrps" "$(echo "$nbps/1048576" | bc -l)" "$np99"
    R[$kind]=$(echo "$crps/$nrps" | bc -l)
done
printf 'ratio cairn/nginx req/s: small %.2fx, large %.2fx\n' "${R[small]}" "${R[large]}"
echo "cairn RSS after the runs: $(ps -o rss= -p $CAIRN_PID) KiB"
