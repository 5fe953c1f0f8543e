#!/usr/bin/env bash
# Wall time and peak RSS of a cold `cairn repo sync` with policy = "on_demand" and with
# policy = "immediate", of an upstream of N packages of SIZE bytes each (incompressible
# payload, stored uncompressed), served by nginx on a free loopback port. What the
# ratio of the two policies is when packages weigh what a distribution's do (RHEL 7:
# about 60 GB in 33,000 packages, 1.8 MB each), where bench/memory.sh's generated
# packages weigh 20 KB and the metadata dominates.
# The upstream and each data dir are written under the working directory's temp dir:
# it needs twice N x SIZE bytes free.
#
# Usage: [RUNS=3] bench/sizes.sh [N] [SIZE]   (default: 2000 1800000; every run printed)
# Needs: cargo, createrepo_c, nginx, GNU time.
set -euo pipefail
N=${1:-2000}
SIZE=${2:-1800000}
RUNS=${RUNS:-3}
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_workdir
REPO=$WORK/www/r
for i in $(seq 1 "$N"); do
    "$BIN" generate "$REPO" --payload-bytes "$SIZE" --name "big$i" >/dev/null
done
createrepo_c --no-database --quiet --workers 2 "$REPO"
chmod -R a+rX "$WORK/www"
start_nginx "$WORK" "$WORK/www" "$PORT"
echo "$N packages of $SIZE bytes ($(du -sm "$REPO" | cut -f1) MiB); not pinned"
printf '%-4s %-10s %9s %12s\n' run policy seconds "peak RSS MiB"
for RUN in $(seq 1 "$RUNS"); do
for POLICY in on_demand immediate; do
    D=$WORK/$POLICY
    mkdir -p "$D"
    cat > "$D/cairn.toml" <<TOML
[server]
data_dir = "$D/data"
[[repo]]
id = "bench"
feed = "http://127.0.0.1:$PORT/r/"
policy = "$POLICY"
TOML
    /usr/bin/time -f "%e %M" -o "$D/time.out" \
        "$BIN" --config "$D/cairn.toml" repo sync bench >/dev/null 2>"$D/err" \
        || { cat "$D/err"; exit 1; }
    read -r secs rss < "$D/time.out"
    printf '%-4s %-10s %9.2f %12d\n' "$RUN" "$POLICY" "$secs" $((rss / 1024))
    rm -rf "$D"
done
done
