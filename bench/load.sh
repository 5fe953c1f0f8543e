#!/usr/bin/env bash
# Load test: 1,000 concurrent keep-alive connections for 60 s against `cairn serve`,
# mixing repomd.xml, a small package and a 12 MiB package. Passes when wrk reports no
# socket errors and no non-2xx answers, the server's open descriptors return to their
# level before the run, and its RSS stays bounded.
#
# Usage: bench/load.sh [seconds, default 60] [connections, default 1000]
# Needs: cargo, wrk.
set -euo pipefail
DURATION=${1:-60}
CONNS=${2:-1000}
cd "$(dirname "$0")/.."
. bench/lib.sh
cargo build --release --quiet
BIN=$PWD/target/release/cairn
WORK=$(mktemp -d)
cleanup() {
    [ -n "${CAIRN_PID:-}" ] && kill "$CAIRN_PID" 2>/dev/null || true
    sleep 0.5
    rm -rf "$WORK"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

"$BIN" generate "$WORK/rpms" --count 20 >/dev/null
"$BIN" generate "$WORK/rpms" --payload-bytes $((12 * 1024 * 1024)) --name big >/dev/null
cat > "$WORK/cairn.toml" <<TOML
[server]
data_dir = "$WORK/data"
listen = "127.0.0.1:0"
max_connections = $((CONNS * 2))
[[repo]]
id = "load"
TOML
CAIRN_LOG=warn "$BIN" --config "$WORK/cairn.toml" import load "$WORK/rpms" >/dev/null
CAIRN_LOG=warn "$BIN" --config "$WORK/cairn.toml" snapshot create load --name s1 >/dev/null
CAIRN_LOG=warn "$BIN" --config "$WORK/cairn.toml" serve > "$WORK/cairn.out" 2> "$WORK/cairn.err" &
CAIRN_PID=$!
for _ in $(seq 1 100); do grep -q listening "$WORK/cairn.out" 2>/dev/null && break; sleep 0.1; done
ADDR=$(sed -n 's|listening on http://\(.*\)/|\1|p' "$WORK/cairn.out")
BASE="http://$ADDR/repos/load/s1"
SMALL=$(cd "$WORK/rpms" && ls gen-*.rpm | head -1)

# A wrk script cycling over three paths.
cat > "$WORK/mix.lua" <<LUA
local paths = { "/repos/load/s1/repodata/repomd.xml",
                "/repos/load/s1/Packages/g/$SMALL",
                "/repos/load/s1/Packages/b/big-1.0-1.noarch.rpm" }
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
LUA

fds() { ls "/proc/$CAIRN_PID/fd" | wc -l; }
FDS_BEFORE=$(fds)
echo "load: $CONNS connections for ${DURATION}s, $(nproc) cores; cairn fds before: $FDS_BEFORE"
wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 30s -s "$WORK/mix.lua" "http://$ADDR" > "$WORK/wrk.out" 2>&1 &
WRK=$!
PEAK=$(peak_rss "$CAIRN_PID" "$WRK" 1)
wait $WRK || true
cat "$WORK/wrk.out"
sleep 2
FDS_AFTER=$(fds)
echo "cairn fds after: $FDS_AFTER; peak RSS: $PEAK KiB"
STATUS=0
if grep -q "Socket errors" "$WORK/wrk.out"; then echo "FAIL: socket errors"; STATUS=1; fi
if grep -q "Non-2xx" "$WORK/wrk.out"; then echo "FAIL: non-2xx answers"; STATUS=1; fi
if [ "$FDS_AFTER" -gt $((FDS_BEFORE + 2)) ]; then echo "FAIL: descriptors leaked"; STATUS=1; fi
if [ -s "$WORK/cairn.err" ]; then echo "server log:"; tail -5 "$WORK/cairn.err"; fi
[ $STATUS = 0 ] && echo "PASS: no errors, no leaked descriptors"
exit $STATUS
