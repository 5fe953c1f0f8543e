#!/usr/bin/env bash
# Installation tree benchmark: mirroring and serving a kickstart tree with large images.
#
# Builds a tree like a distribution's: two variants (BaseOS, AppStream) of N generated
# packages each (default 200) indexed by createrepo_c, a kernel (16 MiB), an initrd
# (128 MiB) and a stage2 image of SIZE MiB (default 700), random bytes, and a
# `.treeinfo` written by productmd with their sha256. nginx serves it on a free
# loopback port. Each round (ROUNDS, default 3) measures:
#   - a plain copy: `curl` fetching every file of the tree once, one process per file,
#     one after the other, into an empty directory, then `sync` (a naive mirror script;
#     no verification, no catalog);
#   - a cold `cairn repo sync` of the tree into an empty data dir: wall time and peak
#     RSS (GNU time), which shows images are streamed, not held;
#   - a no-change re-sync;
#   - serving the stage2 image: `curl -o /dev/null` from `cairn serve` and from the same
#     nginx, each 3 times (median).
# Prints every round and the medians. Not pinned; both servers run with their defaults
# (nginx: 2 workers, sendfile on).
#
# Usage: [ROUNDS=3] bench/tree.sh [packages-per-variant] [stage2-MiB]
# Needs: cargo, createrepo_c, nginx, curl, GNU time, python3 with productmd.
set -euo pipefail
N=${1:-200}
SIZE=${2:-700}
cd "$(dirname "$0")/.."
. bench/lib.sh
cargo build --release --quiet
BIN=$PWD/target/release/cairn
WORK=$(mktemp -d)
chmod 755 "$WORK"
ROUNDS=${ROUNDS:-3}
SERVER=""
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
    [ -f "$WORK/nginx.pid" ] && kill -QUIT "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    sleep 0.3
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

TREE=$WORK/www/tree
for v in BaseOS AppStream; do
    "$BIN" generate "$TREE/$v/Packages" --count "$N" >/dev/null
    createrepo_c --no-database --quiet "$TREE/$v"
done
mkdir -p "$TREE/images/pxeboot"
head -c $((16 << 20)) /dev/urandom > "$TREE/images/pxeboot/vmlinuz"
head -c $((128 << 20)) /dev/urandom > "$TREE/images/pxeboot/initrd.img"
head -c $((SIZE << 20)) /dev/urandom > "$TREE/images/install.img"
echo "Bench Linux end user licence." > "$TREE/EULA"
python3 - "$TREE" <<'PY'
import sys
import productmd.treeinfo as T
root = sys.argv[1]
ti = T.TreeInfo()
ti.release.name, ti.release.short, ti.release.version, ti.release.type = "Bench Linux", "Bench", "1", "ga"
ti.tree.arch = "x86_64"
ti.tree.build_timestamp = 1700000000
ti.tree.platforms.add("x86_64")
for vid in ["BaseOS", "AppStream"]:
    v = T.Variant(ti)
    v.id = v.uid = v.name = vid
    v.type = "variant"
    v.paths.repository = vid
    v.paths.packages = vid + "/Packages"
    ti.variants.add(v)
ti.images.images["x86_64"] = {"kernel": "images/pxeboot/vmlinuz", "initrd": "images/pxeboot/initrd.img"}
ti.stage2.mainimage = "images/install.img"
for p in ["images/pxeboot/vmlinuz", "images/pxeboot/initrd.img", "images/install.img"]:
    ti.checksums.add(p, "sha256", root_dir=root)
ti.dump(root + "/.treeinfo")
PY
chmod -R a+rX "$WORK/www"
TOTAL=$(du -sb "$TREE" | cut -f1)
FILES=$(cd "$TREE" && find . -type f | sed 's|^\./||')
NPORT=$(free_port)
start_nginx "$WORK" "$WORK/www" "$NPORT"
UP=http://127.0.0.1:$NPORT/tree/
echo "tree: $(echo "$FILES" | wc -l) files, $((TOTAL >> 20)) MiB (2 x $N packages, stage2 $SIZE MiB); $(nproc) cores, not pinned"

for r in $(seq 1 "$ROUNDS"); do
    # The plain copy: every file once, with curl.
    mkdir -p "$WORK/copy$r"
    start=$(date +%s.%N)
    for f in $FILES; do
        curl -sf --create-dirs -o "$WORK/copy$r/$f" "$UP$f"
    done
    sync
    floor=$(echo "$(date +%s.%N) - $start" | bc)
    rm -rf "$WORK/copy$r"

    D=$WORK/cairn$r
    mkdir -p "$D"
    cat > "$D/cairn.toml" <<TOML
[server]
data_dir = "$D/data"
listen = "127.0.0.1:$(free_port)"
[[repo]]
id = "t"
feed = "$UP"
kind = "tree"
TOML
    /usr/bin/time -f "%e %M" -o "$D/time" "$BIN" --config "$D/cairn.toml" repo sync t >/dev/null 2>"$D/sync.err" \
        || { cat "$D/sync.err"; exit 1; }
    read -r cold rss < "$D/time"
    /usr/bin/time -f "%e %M" -o "$D/time2" "$BIN" --config "$D/cairn.toml" repo sync t >/dev/null 2>&1
    read -r again _ < "$D/time2"
    "$BIN" --config "$D/cairn.toml" snapshot create t --name s >/dev/null
    CPORT=$(grep listen "$D/cairn.toml" | sed 's/.*:\([0-9]*\)"/\1/')
    "$BIN" --config "$D/cairn.toml" serve >/dev/null 2>&1 &
    SERVER=$!
    for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$CPORT/healthz" >/dev/null && break; sleep 0.1; done
    # Each GET must bring the whole image (curl -f fails on an error status).
    get() {
        local out
        out=$(curl -sf -o /dev/null -w '%{size_download} %{time_total}' "$1")
        [ "${out%% *}" = "$((SIZE << 20))" ] || { echo "short answer from $1: $out" >&2; exit 1; }
        echo "${out#* }"
    }
    c=$(for _ in 1 2 3; do get "http://127.0.0.1:$CPORT/repos/t/s/images/install.img"; done | median)
    n=$(for _ in 1 2 3; do get "${UP}images/install.img"; done | median)
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
    echo "round $r: curl copy ${floor}s | cairn cold sync ${cold}s (peak RSS $((rss / 1024)) MiB), no-change ${again}s | stage2 GET: cairn ${c}s, nginx ${n}s"
    echo "$floor $cold $rss $again $c $n" >> "$WORK/rounds"
    rm -rf "$D"
done
read -r mf mc mr ma msc msn < <(
    for col in 1 2 3 4 5 6; do cut -d' ' -f$col "$WORK/rounds" | median; done | paste -sd' '
)
echo "median of $ROUNDS: curl copy ${mf}s, cold sync ${mc}s (x$(echo "scale=2; $mc / $mf" | bc) the copy), peak RSS $((mr / 1024)) MiB, no-change ${ma}s; stage2 GET cairn ${msc}s vs nginx ${msn}s (cairn/nginx time x$(echo "scale=2; $msc / $msn" | bc))"
