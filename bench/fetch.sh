#!/usr/bin/env bash
# On-demand fetches while the disk is busy: an on_demand mirror of N generated packages
# (nginx on loopback as upstream) is served by `cairn serve`, and curl asks for every
# package once, 8 at a time; every package is fetched from upstream, verified and kept
# in the pool. Timed twice: on a quiet machine, and while dd writes LOAD MiB to a file
# beside the pool (what a large sync or import on the same file system does).
# BIN=path measures another build.
#
# Usage: [RUNS=3] [LOAD=3000] [BIN=...] bench/fetch.sh [N]   (default 400; every run printed)
# Needs: cargo, createrepo_c, nginx, curl, GNU time.
set -euo pipefail
N=${1:-400}
RUNS=${RUNS:-3}
LOAD=${LOAD:-3000}
OWN_BIN=${BIN:-}
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_workdir
[ -n "$OWN_BIN" ] && BIN=$OWN_BIN
"$BIN" generate "$WORK/www/r" --count "$N" >/dev/null
createrepo_c --no-database --quiet "$WORK/www/r"
chmod -R a+rX "$WORK/www"
start_nginx "$WORK" "$WORK/www" "$PORT"
echo "$N packages fetched on demand, 8 clients; load: $LOAD MiB written beside the pool; not pinned"
printf '%-4s %-6s %9s\n' run load seconds
for RUN in $(seq 1 "$RUNS"); do
    for MODE in quiet busy; do
        D=$WORK/$RUN-$MODE
        mkdir -p "$D"
        cat > "$D/cairn.toml" <<TOML
[server]
data_dir = "$D/data"
listen = "127.0.0.1:0"
[[repo]]
id = "r"
feed = "http://127.0.0.1:$PORT/r/"
policy = "on_demand"
TOML
        "$BIN" --config "$D/cairn.toml" repo sync r >/dev/null 2>&1
        CAIRN_LOG=warn "$BIN" --config "$D/cairn.toml" serve > "$D/cairn.out" 2>&1 &
        SERVER=$!
        for _ in $(seq 1 100); do grep -q listening "$D/cairn.out" 2>/dev/null && break; sleep 0.1; done
        ADDR=$(sed -n 's|^listening on http://\(.*\)/$|\1|p' "$D/cairn.out" | head -n 1)
        "$BIN" --config "$D/cairn.toml" repo packages r --json \
            | python3 -c 'import json,sys; [print(p["location"]) for p in json.load(sys.stdin)["packages"]]' \
            | sed "s|^|http://$ADDR/repos/r/latest/|" > "$D/urls"
        LOADER=
        if [ "$MODE" = busy ]; then
            dd if=/dev/zero of="$D/load" bs=1M count="$LOAD" status=none &
            LOADER=$!
            sleep 1
        fi
        START=$(date +%s.%N)
        xargs -P 8 -n 1 curl -sf -o /dev/null < "$D/urls" || { echo "a fetch failed"; exit 1; }
        END=$(date +%s.%N)
        [ -n "$LOADER" ] && wait "$LOADER"
        kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
        NOT_STORED=$("$BIN" --config "$D/cairn.toml" repo packages r --json \
            | python3 -c 'import json,sys; print(json.load(sys.stdin)["not_stored"])')
        [ "$NOT_STORED" = 0 ] || { echo "$NOT_STORED packages not kept"; exit 1; }
        printf '%-4s %-6s %9.2f\n' "$RUN" "$MODE" "$(echo "$END - $START" | bc)"
        rm -rf "$D"
    done
done
