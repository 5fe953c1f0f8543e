#!/usr/bin/env bash
# What a token costs on a guarded tree: the same small package served by one
# `cairn serve` from a public repository and from one with `access = "token"` (a
# worker checks a token against the catalog on the control runtime once per
# [server] token_cache, 10 s by default; TOKEN_CACHE=0s checks every request), with
# wrk, in alternating rounds; prints requests/s and p99 for each round, the medians
# and the ratio guarded / public.
#
# Usage: bench/guard.sh [seconds per run, default 5] [connections, default 16]
#        (ROUNDS=5 by default; wrk runs 2 threads; nothing is pinned)
# Needs: cargo, wrk.
set -euo pipefail
DURATION=${1:-5}
CONNS=${2:-16}
ROUNDS=${ROUNDS:-5}
cd "$(dirname "$0")/.."
cargo build --release -q
BIN=$PWD/target/release/cairn
WORK=$(mktemp -d)
trap 'kill $(cat "$WORK/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT
cat > "$WORK/cairn.toml" <<EOF
[server]
listen = "127.0.0.1:0"
data_dir = "$WORK/data"
token_cache = "${TOKEN_CACHE:-10s}"
[[repo]]
id = "open"
[[repo]]
id = "guarded"
access = "token"
EOF
"$BIN" --config "$WORK/cairn.toml" generate "$WORK/rpms" --count 20 >/dev/null
"$BIN" --config "$WORK/cairn.toml" import open "$WORK/rpms" >/dev/null
"$BIN" --config "$WORK/cairn.toml" import guarded "$WORK/rpms" >/dev/null
TOKEN=$("$BIN" --config "$WORK/cairn.toml" token create --name bench --scope read 2>/dev/null)
"$BIN" --config "$WORK/cairn.toml" serve > "$WORK/out" 2> "$WORK/err" &
echo $! > "$WORK/pid"
for _ in $(seq 1 50); do grep -q listening "$WORK/out" 2>/dev/null && break; sleep 0.1; done
BASE=$(sed -n 's/^listening on \(.*\)\/$/\1/p' "$WORK/out")
FILE=$(curl -fsS "$BASE/api/v1/repos/open/trees/latest/packages?per_page=1" \
    -H "Authorization: Bearer $TOKEN" | sed -n 's/.*"location": "\([^"]*\)".*/\1/p' | head -1)
AUTH="Authorization: Basic $(printf 'cairn:%s' "$TOKEN" | base64 -w0)"
curl -fsS -o /dev/null "$BASE/repos/open/latest/$FILE"
curl -fsS -o /dev/null -H "$AUTH" "$BASE/repos/guarded/latest/$FILE"

run() { # url [header] -> "rps p99ms"
    local out
    if [ -n "${2:-}" ]; then
        out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -H "$2" "$1")
    else
        out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "$1")
    fi
    local rps p99
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}')
    echo "$rps $p99"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "file: $FILE, $CONNS connections, wrk -t2, ${DURATION}s per run, $ROUNDS rounds, not pinned, token_cache ${TOKEN_CACHE:-10s}"
printf '%-6s %14s %10s %14s %10s\n' round "public rps" "p99 ms" "guarded rps" "p99 ms"
: > "$WORK/open"; : > "$WORK/guarded"
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then
        o=$(run "$BASE/repos/open/latest/$FILE"); g=$(run "$BASE/repos/guarded/latest/$FILE" "$AUTH")
    else
        g=$(run "$BASE/repos/guarded/latest/$FILE" "$AUTH"); o=$(run "$BASE/repos/open/latest/$FILE")
    fi
    echo "$o" >> "$WORK/open"; echo "$g" >> "$WORK/guarded"
    printf '%-6s %14s %10s %14s %10s\n' "$r" $o $g
done
mo=$(cut -d' ' -f1 "$WORK/open" | median); mg=$(cut -d' ' -f1 "$WORK/guarded" | median)
po=$(cut -d' ' -f2 "$WORK/open" | median); pg=$(cut -d' ' -f2 "$WORK/guarded" | median)
printf '%-6s %14s %10s %14s %10s\n' median "$mo" "$po" "$mg" "$pg"
echo "guarded / public requests/s: $(echo "scale=3; $mg / $mo" | bc)"
