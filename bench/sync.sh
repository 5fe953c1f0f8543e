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
#     e.g. CHANTAL=~/venv/bin/chantal after `pip install chantal`).
#
# Usage: bench/sync.sh [packages]
# Needs: cargo, createrepo_c, nginx, dnf with dnf-plugins-core (reposync), GNU time.
set -euo pipefail
N=${1:-2000}
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN=$PWD/target/release/cairn
WORK=$(mktemp -d)
chmod 755 "$WORK"
cleanup() {
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    sleep 0.3
    rm -rf "$WORK"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

"$BIN" generate "$WORK/www/repo" --count "$N" >/dev/null
createrepo_c --no-database --quiet "$WORK/www/repo"
chmod -R a+rX "$WORK/www"
cat > "$WORK/nginx.conf" <<NGX
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http { access_log off; sendfile on; server { listen 127.0.0.1:$PORT; root $WORK/www; } }
NGX
nginx -c "$WORK/nginx.conf"
sleep 0.3

cat > "$WORK/cairn.toml" <<TOML
[server]
data_dir = "$WORK/data"
[[repo]]
id = "bench"
feed = "http://127.0.0.1:$PORT/repo/"
TOML

measure() { # label, command... -> "label seconds rss_kib"
    local label=$1; shift
    sync # start every tool with nothing else dirty on the file system
    /usr/bin/time -f "%e %M" -o "$WORK/time.out" "$@" >/dev/null 2>"$WORK/cmd.err" || { cat "$WORK/cmd.err"; exit 1; }
    read -r secs rss < "$WORK/time.out"
    printf '%-44s %8.2f %10d\n' "$label" "$secs" "$rss"
    echo "$secs" > "$WORK/$label.secs"
}

printf 'sync benchmark: %d packages over loopback, %d cores\n' "$N" "$(nproc)"
printf '%-44s %8s %10s\n' operation seconds peak_KiB
export CAIRN_LOG=warn
measure cairn_cold "$BIN" --config "$WORK/cairn.toml" repo sync bench
measure cairn_unchanged "$BIN" --config "$WORK/cairn.toml" repo sync bench
measure cairn_snapshot "$BIN" --config "$WORK/cairn.toml" snapshot create bench --name s1
measure reposync dnf reposync --download-metadata --setopt=reposdir=/dev/null \
    --setopt=cachedir="$WORK/dnf-cache" --releasever=1 \
    --repofrompath=b,"http://127.0.0.1:$PORT/repo/" --repo=b -p "$WORK/reposync" -q
if [ -n "${CHANTAL:-}" ]; then
    cat > "$WORK/chantal.yaml" <<YAML
database:
  url: sqlite:///$WORK/chantal/chantal.db
storage:
  base_path: $WORK/chantal
  pool_path: $WORK/chantal/pool
  published_path: $WORK/chantal/published
  temp_path: $WORK/chantal/tmp
repositories:
  - id: bench
    type: rpm
    feed: http://127.0.0.1:$PORT/repo/
YAML
    mkdir -p "$WORK/chantal"
    # The PyPI package ships without its Alembic scripts (`chantal db init` cannot find
    # alembic.ini, and every command checks the schema revision with them), so the schema
    # comes from its SQLAlchemy models, as its own tests make it, and the revision check
    # is skipped; the sync and snapshot code paths run unchanged.
    PY="$(dirname "$CHANTAL")/python"
    "$PY" -c "from chantal.db.connection import DatabaseManager; \
DatabaseManager('sqlite:///$WORK/chantal/chantal.db').create_all()"
    cat > "$WORK/chantal-run.py" <<'PYEOF'
import sys
from chantal.db import migrations
migrations.db_needs_upgrade = lambda url: False
from chantal.cli.main import cli
sys.exit(cli())
PYEOF
    measure chantal "$PY" "$WORK/chantal-run.py" --config "$WORK/chantal.yaml" repo sync --repo-id bench -q
    measure chantal_snapshot "$PY" "$WORK/chantal-run.py" --config "$WORK/chantal.yaml" snapshot create --repo-id bench --name s1
    echo "ratio: cairn cold sync is $(echo "scale=1; $(cat "$WORK/chantal.secs") / $(cat "$WORK/cairn_cold.secs")" | bc)x faster than chantal"
    echo "ratio: cairn snapshot create is $(echo "scale=1; $(cat "$WORK/chantal_snapshot.secs") / $(cat "$WORK/cairn_snapshot.secs")" | bc)x faster than chantal's"
fi
echo "ratio: cairn cold sync is $(echo "scale=1; $(cat "$WORK/reposync.secs") / $(cat "$WORK/cairn_cold.secs")" | bc)x faster than dnf reposync"
