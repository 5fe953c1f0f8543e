#!/usr/bin/env bash
# Sync benchmark: cairn vs `dnf reposync --download-metadata` (and Chantal when
# CHANTAL names its executable), same upstream, same run.
#
# Generates N small packages (default 2000), indexes them with createrepo_c, serves them
# with nginx on a free loopback port, then measures wall time and peak RSS of:
#   - a cold `cairn repo sync` into an empty data dir,
#   - a no-change re-sync (one request),
#   - `dnf reposync --download-metadata` into an empty directory,
#   - `chantal repo sync` into an empty SQLite-backed install (when CHANTAL is set,
#     e.g. CHANTAL=~/venv/bin/chantal after `pip install chantal`; first round only).
#
# The tools write to a file system that nothing else has touched: every round (ROUNDS,
# default 3) makes a fresh ext4 image with mkfs.ext4's defaults and loop-mounts it, and
# the rounds alternate which tool goes first. How long ext4 takes to allocate an inode
# depends on what was deleted nearby in the last minutes (without a journal it skips
# recently freed inodes one by one), so measuring on a build machine's busy file system
# compares histories, not tools. BENCH_FS=workdir measures in the working directory
# instead (also the fallback without root or loop devices); each round then uses new
# directories and nothing is deleted until the end.
#
# Usage: [ROUNDS=3] [BENCH_FS=fresh|workdir] bench/sync.sh [packages]
# Needs: cargo, createrepo_c, nginx, dnf with dnf-plugins-core (reposync), GNU time, bc;
# for fresh file systems: root, mkfs.ext4, loop devices.
set -euo pipefail
N=${1:-2000}
cd "$(dirname "$0")/.."
. bench/lib.sh
cargo build --release --quiet
BIN=$PWD/target/release/cairn
WORK=$(mktemp -d)
chmod 755 "$WORK"
ROUNDS=${ROUNDS:-3}
cleanup() {
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    mountpoint -q "$WORK/fs" 2>/dev/null && umount "$WORK/fs"
    sleep 0.3
    rm -rf "$WORK"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

"$BIN" generate "$WORK/www/repo" --count "$N" >/dev/null
createrepo_c --no-database --quiet "$WORK/www/repo"
chmod -R a+rX "$WORK/www"
start_nginx "$WORK" "$WORK/www" "$PORT"

# Where the tools write: a fresh ext4 file system per round when possible.
FS_MODE=${BENCH_FS:-fresh}
if [ "$FS_MODE" = fresh ]; then
    mkdir -p "$WORK/fs"
    if ! { [ "$(id -u)" = 0 ] && command -v mkfs.ext4 >/dev/null \
        && truncate -s 4G "$WORK/fs.img" && mkfs.ext4 -q -F "$WORK/fs.img" \
        && mount -o loop "$WORK/fs.img" "$WORK/fs" && umount "$WORK/fs"; }; then
        echo "no fresh file system (needs root, mkfs.ext4 and loop devices); using the working directory"
        FS_MODE=workdir
    fi
fi
round_dir() { # round -> directory the tools of that round write under
    if [ "$FS_MODE" = fresh ]; then
        mountpoint -q "$WORK/fs" && umount "$WORK/fs"
        rm -f "$WORK/fs.img"
        truncate -s 4G "$WORK/fs.img"
        mkfs.ext4 -q -F "$WORK/fs.img"
        mount -o loop "$WORK/fs.img" "$WORK/fs"
        echo "$WORK/fs"
    else
        mkdir -p "$WORK/round$1"
        echo "$WORK/round$1"
    fi
}

measure() { # label, command... -> "label seconds rss_kib"; appends seconds to label.secs
    local label=$1; shift
    sync # start every tool with nothing else dirty on the file system
    /usr/bin/time -f "%e %M" -o "$WORK/time.out" "$@" >/dev/null 2>"$WORK/cmd.err" || { cat "$WORK/cmd.err"; exit 1; }
    read -r secs rss < "$WORK/time.out"
    printf '%-44s %8.2f %10d\n' "$label" "$secs" "$rss"
    echo "$secs" >> "$WORK/$label.secs"
}
median() { sort -n "$WORK/$1.secs" | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

run_cairn() { # dir
    cat > "$WORK/cairn.toml" <<TOML
[server]
data_dir = "$1/cairn"
[[repo]]
id = "bench"
feed = "http://127.0.0.1:$PORT/repo/"
TOML
    measure cairn_cold "$BIN" --config "$WORK/cairn.toml" repo sync bench
    measure cairn_unchanged "$BIN" --config "$WORK/cairn.toml" repo sync bench
    measure cairn_snapshot "$BIN" --config "$WORK/cairn.toml" snapshot create bench --name s1
}
run_reposync() { # dir
    measure reposync dnf reposync --download-metadata --setopt=reposdir=/dev/null \
        --setopt=cachedir="$1/dnf-cache" --releasever=1 \
        --repofrompath=b,"http://127.0.0.1:$PORT/repo/" --repo=b -p "$1/reposync" -q
}
run_chantal() { # dir
    local C=$1/chantal
    cat > "$WORK/chantal.yaml" <<YAML
database:
  url: sqlite:///$C/chantal.db
storage:
  base_path: $C
  pool_path: $C/pool
  published_path: $C/published
  temp_path: $C/tmp
repositories:
  - id: bench
    type: rpm
    feed: http://127.0.0.1:$PORT/repo/
YAML
    mkdir -p "$C"
    # The PyPI package ships without its Alembic scripts (`chantal db init` cannot find
    # alembic.ini, and every command checks the schema revision with them), so the schema
    # comes from its SQLAlchemy models, as its own tests make it, and the revision check
    # is skipped; the sync and snapshot code paths run unchanged.
    PY="$(dirname "$CHANTAL")/python"
    "$PY" -c "from chantal.db.connection import DatabaseManager; \
DatabaseManager('sqlite:///$C/chantal.db').create_all()"
    cat > "$WORK/chantal-run.py" <<'PYEOF'
import sys
from chantal.db import migrations
migrations.db_needs_upgrade = lambda url: False
from chantal.cli.main import cli
sys.exit(cli())
PYEOF
    measure chantal "$PY" "$WORK/chantal-run.py" --config "$WORK/chantal.yaml" repo sync --repo-id bench -q
    measure chantal_snapshot "$PY" "$WORK/chantal-run.py" --config "$WORK/chantal.yaml" snapshot create --repo-id bench --name s1
}

printf 'sync benchmark: %d packages over loopback, %d cores, %d rounds\n' "$N" "$(nproc)" "$ROUNDS"
export CAIRN_LOG=warn
for round in $(seq 1 "$ROUNDS"); do
    dir=$(round_dir "$round")
    printf '\nround %d on %s\n' "$round" "$(findmnt -n -o FSTYPE,SOURCE,OPTIONS -T "$dir" | cut -c1-60)"
    printf '%-44s %8s %10s\n' operation seconds peak_KiB
    if [ $((round % 2)) = 1 ]; then
        run_cairn "$dir"; run_reposync "$dir"
    else
        run_reposync "$dir"; run_cairn "$dir"
    fi
    if [ "$round" = 1 ] && [ -n "${CHANTAL:-}" ]; then
        run_chantal "$dir"
    fi
done
mountpoint -q "$WORK/fs" 2>/dev/null && umount "$WORK/fs"

printf '\nmedians over %d rounds: cairn cold %s s, unchanged %s s, snapshot %s s; reposync %s s\n' \
    "$ROUNDS" "$(median cairn_cold)" "$(median cairn_unchanged)" "$(median cairn_snapshot)" "$(median reposync)"
if [ -n "${CHANTAL:-}" ]; then
    echo "ratio: cairn cold sync is $(echo "scale=1; $(median chantal) / $(median cairn_cold)" | bc)x faster than chantal"
    echo "ratio: cairn snapshot create is $(echo "scale=1; $(median chantal_snapshot) / $(median cairn_snapshot)" | bc)x faster than chantal's"
fi
echo "ratio: cairn cold sync is $(echo "scale=1; $(median reposync) / $(median cairn_cold)" | bc)x faster than dnf reposync"
