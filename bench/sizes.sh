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
    read -r secs rss < <(timed_sync "$WORK/$POLICY" "http://127.0.0.1:$PORT/r/" "$POLICY")
    printf '%-4s %-10s %9.2f %12d\n' "$RUN" "$POLICY" "$secs" "$rss"
done
done
