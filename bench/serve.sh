#!/usr/bin/env bash
# Serving benchmark: cairn vs nginx on the same files, same machine, same run.
#
# Starts `cairn serve` (a snapshot holding packages of ~4 KiB, ~6 KiB, 1, 12 and 100 MiB) and
# nginx (sendfile on, one worker per core, serving a directory with the same files) on
# free loopback ports, runs wrk against each for each file, and prints requests/s,
# throughput, p99 latency and the ratios, then the peak RSS with 256 keep-alive
# connections downloading the 100 MiB package.
#
# Every file is measured in ROUNDS rounds (default 5) that alternate which server goes
# first; the table shows each round and the medians, and the ratios compare medians (one
# run's p99 on a shared VM swings by 2x from background noise alone).
#
# Usage: bench/serve.sh [seconds per run, default 5] [connections, default 64]
#        (BENCH_FILES="1MiB 12MiB" limits the files measured; BENCH_PIN=1 runs both
#        servers on CPU 0 only, one worker each, and wrk on the other CPUs, so the load
#        generator never competes with the server it measures; BENCH_ACCESS_LOG=1 turns
#        on both servers' access logs, each writing a file in the work directory: Cairn
#        `access_log = "combined"` on its redirected standard output, nginx its default
#        combined log with `buffer=64k`)
# Needs: cargo, nginx, wrk (apt-get install nginx wrk).
set -euo pipefail
DURATION=${1:-5}
ROUNDS=${ROUNDS:-5}
CONNS=${2:-64}
SERVER_CPUS=""
CLIENT_CPUS=""
WRK_THREADS=2
NGINX_WORKERS=$(nproc)
if [ "${BENCH_PIN:-0}" = 1 ]; then
    [ "$(nproc)" -ge 2 ] || { echo "BENCH_PIN needs at least 2 CPUs"; exit 1; }
    SERVER_CPUS="taskset -c 0"
    CLIENT_CPUS="taskset -c 1-$(($(nproc) - 1))"
    WRK_THREADS=$(($(nproc) - 1))
    NGINX_WORKERS=1
fi
cd "$(dirname "$0")/.."
. bench/lib.sh
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

# Files: a ~4 KiB and a ~6 KiB package, 1 MiB, 12 MiB and 100 MiB packages, and the
# snapshot's repomd.xml, all served by nginx from a copy of the same tree.
"$BIN" generate "$WORK/rpms" --count 1 >/dev/null
for size in 4096 $((1024 * 1024)) $((12 * 1024 * 1024)) $((100 * 1024 * 1024)); do
    "$BIN" generate "$WORK/rpms" --payload-bytes "$size" --name "size$size" >/dev/null
done

CAIRN_ACCESS="off"
NGINX_ACCESS="access_log off;"
if [ "${BENCH_ACCESS_LOG:-0}" = 1 ]; then
    CAIRN_ACCESS="combined"
    NGINX_ACCESS="access_log $WORK/nginx-access.log combined buffer=64k;"
fi
cat > "$WORK/cairn.toml" <<TOML
[server]
data_dir = "$WORK/data"
listen = "127.0.0.1:0"
access_log = "$CAIRN_ACCESS"
[[repo]]
id = "bench"
TOML
CAIRN_LOG=warn "$BIN" --config "$WORK/cairn.toml" import bench "$WORK/rpms" >/dev/null
CAIRN_LOG=warn "$BIN" --config "$WORK/cairn.toml" snapshot create bench --name s1 >/dev/null

CAIRN_LOG=warn $SERVER_CPUS "$BIN" --config "$WORK/cairn.toml" serve > "$WORK/cairn.out" &
CAIRN_PID=$!
for _ in $(seq 1 100); do grep -q listening "$WORK/cairn.out" 2>/dev/null && break; sleep 0.1; done
CAIRN_ADDR=$(sed -n 's|^listening on http://\(.*\)/$|\1|p' "$WORK/cairn.out" | head -n 1)
BASE="http://$CAIRN_ADDR/repos/bench/s1"

# nginx serves the same bytes from a plain directory tree (fetched from cairn, so the
# paths and contents are identical).
mkdir -p "$WORK/www/repodata"
curl -sf "$BASE/repodata/repomd.xml" -o "$WORK/www/repodata/repomd.xml"
declare -A FILE
FILE[repomd]="repodata/repomd.xml"
for f in "$WORK"/rpms/*.rpm; do
    name=$(basename "$f")
    first=$(echo "${name:0:1}" | tr 'A-Z' 'a-z')
    mkdir -p "$WORK/www/Packages/$first"
    cp "$f" "$WORK/www/Packages/$first/"
    case "$name" in
        gen-*) FILE[6KiB]="Packages/$first/$name" ;;
        size4096-*) FILE[4KiB]="Packages/$first/$name" ;;
        size1048576-*) FILE[1MiB]="Packages/$first/$name" ;;
        size12582912-*) FILE[12MiB]="Packages/$first/$name" ;;
        size104857600-*) FILE[100MiB]="Packages/$first/$name" ;;
    esac
done
chmod -R a+rX "$WORK/www"
NGINX_PORT=$(free_port)
cat > "$WORK/nginx.conf" <<NGX
worker_processes $NGINX_WORKERS;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
    $NGINX_ACCESS
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types { application/x-rpm rpm; application/xml xml; }
    server {
        listen 127.0.0.1:$NGINX_PORT reuseport;
        root $WORK/www;
    }
}
NGX
$SERVER_CPUS nginx -c "$WORK/nginx.conf"
sleep 0.3
for k in "${!FILE[@]}"; do
    cmp -s <(curl -sf "$BASE/${FILE[$k]}") <(curl -sf "http://127.0.0.1:$NGINX_PORT/${FILE[$k]}") \
        || { echo "cairn and nginx serve different bytes for ${FILE[$k]}"; exit 1; }
done

run_wrk() { # url [wrk options] -> "req/s bytes/s p99ms"
    local url=$1; shift
    $CLIENT_CPUS wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$@" "$url" 2>&1 | awk '
        /Requests\/sec/ {rps=$2}
        /Transfer\/sec/ {v=$2; u=v; sub(/[0-9.]+/,"",u); sub(/[A-Za-z]+/,"",v);
                         m=(u=="GB")?1073741824:(u=="MB")?1048576:(u=="KB")?1024:1; bps=v*m}
        / 99%/ {l=$2; if (l ~ /us$/) {sub(/us/,"",l); l=l/1000} else if (l ~ /ms$/) {sub(/ms/,"",l)} else if (l ~ /s$/) {sub(/s/,"",l); l=l*1000}; p99=l}
        END {printf "%s %.0f %s\n", rps, bps, p99}'
}

printf 'serve benchmark: %s s per run, %s connections, %s cores%s\n' "$DURATION" "$CONNS" "$(nproc)" \
    "$([ -n "$SERVER_CPUS" ] && echo ', servers pinned to CPU 0 (one worker), wrk to the rest')"
printf '%-8s %-7s %-6s %12s %12s %10s\n' file server round req/s MiB/s p99_ms
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
RATIOS=""
for kind in ${BENCH_FILES:-repomd 4KiB 6KiB 1MiB 12MiB 100MiB}; do
    f=${FILE[$kind]}
    : > "$WORK/cairn.runs"; : > "$WORK/nginx.runs"
    for round in $(seq 1 "$ROUNDS"); do
        if [ $((round % 2)) = 1 ]; then order="cairn nginx"; else order="nginx cairn"; fi
        for server in $order; do
            if [ "$server" = cairn ]; then url="$BASE/$f"; else url="http://127.0.0.1:$NGINX_PORT/$f"; fi
            read -r rps bps p99 < <(run_wrk "$url")
            echo "$rps $bps $p99" >> "$WORK/$server.runs"
            printf '%-8s %-7s %-6s %12.0f %12.1f %10.2f\n' "$kind" "$server" "$round" "$rps" "$(echo "$bps/1048576" | bc -l)" "$p99"
        done
    done
    for server in cairn nginx; do
        read -r "${server}_rps" < <(cut -d' ' -f1 "$WORK/$server.runs" | median)
        read -r "${server}_bps" < <(cut -d' ' -f2 "$WORK/$server.runs" | median)
        read -r "${server}_p99" < <(cut -d' ' -f3 "$WORK/$server.runs" | median)
    done
    printf '%-8s %-7s %-6s %12.0f %12.1f %10.2f\n' "$kind" cairn median "$cairn_rps" "$(echo "$cairn_bps/1048576" | bc -l)" "$cairn_p99"
    printf '%-8s %-7s %-6s %12.0f %12.1f %10.2f\n' "$kind" nginx median "$nginx_rps" "$(echo "$nginx_bps/1048576" | bc -l)" "$nginx_p99"
    case "$kind" in
        repomd|4KiB|6KiB) # small files: requests per second and p99 latency
            RATIOS="$RATIOS $(printf '%s %.2fx req/s (p99 %s vs %s ms);' "$kind" "$(echo "$cairn_rps/$nginx_rps" | bc -l)" "$cairn_p99" "$nginx_p99")" ;;
        *) # large files: bytes per second
            RATIOS="$RATIOS $(printf '%s %.2fx bytes/s;' "$kind" "$(echo "$cairn_bps/$nginx_bps" | bc -l)")" ;;
    esac
done
echo "ratio cairn/nginx:$RATIOS"
if [ "${BENCH_ACCESS_LOG:-0}" = 1 ]; then
    kill -USR1 "$(cat "$WORK/nginx.pid")" 2>/dev/null || true # reopening flushes its buffer
    sleep 0.5
    dropped=$(curl -sf "http://$CAIRN_ADDR/metrics" | awk '/^cairn_http_access_log_dropped_total/ {print $2}')
    echo "access log lines: cairn $(($(wc -l < "$WORK/cairn.out") - 1)) (dropped ${dropped:-?}), nginx $(wc -l < "$WORK/nginx-access.log")"
fi

# Latency at the same offered load: a saturating closed-loop run measures the load
# generator too (it shares the cores, and a faster server leaves it less CPU), so the
# small files are also run once with each connection pausing 1.5 ms between requests
# (~40k requests/s offered, below both servers' capacity) and the p99s compared.
cat > "$WORK/paced.lua" <<'LUA'
function delay() return 1.5 end
LUA
PACED=""
for kind in ${BENCH_PACED:-repomd 4KiB 6KiB}; do
    f=${FILE[$kind]}
    read -r crps _ cp99 < <(run_wrk "$BASE/$f" -s "$WORK/paced.lua")
    read -r nrps _ np99 < <(run_wrk "http://127.0.0.1:$NGINX_PORT/$f" -s "$WORK/paced.lua")
    PACED="$PACED $(printf '%s cairn %.0f req/s p99 %s ms, nginx %.0f req/s p99 %s ms;' "$kind" "$crps" "$cp99" "$nrps" "$np99")"
done
echo "same offered load:$PACED"

# Memory with 256 keep-alive connections downloading the 100 MiB file: it must not grow
# with the file size or the run length.
echo "cairn RSS before the 256-connection run: $(ps -o rss= -p $CAIRN_PID) KiB"
$CLIENT_CPUS wrk -t"$WRK_THREADS" -c256 -d"${DURATION}s" "$BASE/${FILE[100MiB]}" >/dev/null 2>&1 &
WRK=$!
PEAK=$(peak_rss "$CAIRN_PID" "$WRK" 0.5)
echo "cairn peak RSS with 256 connections on the 100 MiB file: $PEAK KiB"
