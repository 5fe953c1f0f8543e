#!/usr/bin/env bash
# Crash trials: runs an operation (import, sync, snapshot, view snapshot, publish, gc),
# kills it with SIGKILL after a random delay, and checks what is left:
#   - `cairn db verify` finds nothing missing or corrupt (no referenced blob is lost),
#   - the operation run again succeeds,
#   - a server started on the data dir serves every file of every `latest` repomd.xml.
# Prints one line per trial and the counts per backend at the end.
#
# Usage: [TRIALS=20] [PACKAGES=3000] [SLOW_MAX=1.2] [FAST_MAX=0.12]
#        [CAIRN_TEST_POSTGRES_URL=postgres://…] bench/kill9.sh
# SLOW_MAX and FAST_MAX bound the random delay (seconds) for imports and syncs, and for
# the other operations.
# With CAIRN_TEST_POSTGRES_URL (an admin URL) the trials run on PostgreSQL too, each
# backend in a database of its own. Needs: cargo, createrepo_c, nginx, curl, python3,
# psql for PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN=$PWD/target/release/cairn
TRIALS=${TRIALS:-20}
export CAIRN_LOG=warn
N=${PACKAGES:-3000}
WORK=$(mktemp -d)
chmod 755 "$WORK"
cleanup() {
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    pkill -f "$WORK/" 2>/dev/null || true
    sleep 0.3
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The upstream: two sets of N generated packages; each sync trial switches the served
# repository to the other set, so every sync has packages to download and place.
"$BIN" generate "$WORK/gen" --count $((2 * N)) >/dev/null
mkdir -p "$WORK/www/a" "$WORK/www/b"
i=0
for f in "$WORK"/gen/*.rpm; do
    if [ $i -lt "$N" ]; then mv "$f" "$WORK/www/a/"; else mv "$f" "$WORK/www/b/"; fi
    i=$((i + 1))
done
createrepo_c --no-database --quiet "$WORK/www/a"
createrepo_c --no-database --quiet "$WORK/www/b"
ln -sfn a "$WORK/www/repo"
chmod -R a+rX "$WORK/www"
UP=$(free_port)
cat > "$WORK/nginx.conf" <<NGX
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http { access_log off; sendfile on; server { listen 127.0.0.1:$UP; root $WORK/www; } }
NGX
nginx -c "$WORK/nginx.conf"

backends="sqlite"
[ -n "${CAIRN_TEST_POSTGRES_URL:-}" ] && backends="sqlite postgres"

# Every file named by every latest repomd.xml is served with 200.
serves_everything() { # config -> 0 when whole
    local cfg=$1 port out ok=0
    port=$(free_port)
    "$BIN" --config "$cfg" serve --listen "127.0.0.1:$port" > "$WORK/serve.out" 2>&1 &
    local pid=$!
    for _ in $(seq 1 50); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    for tree in repos/fx repos/m views/all; do
        local base="http://127.0.0.1:$port/$tree/latest"
        out=$(curl -s -o "$WORK/repomd.xml" -w '%{http_code}' "$base/repodata/repomd.xml")
        [ "$out" = 404 ] && continue # never published yet: nothing to check
        [ "$out" = 200 ] || { ok=1; break; }
        for href in $(grep -o 'href="[^"]*"' "$WORK/repomd.xml" | cut -d'"' -f2); do
            out=$(curl -s -o /dev/null -w '%{http_code}' "$base/$href")
            [ "$out" = 200 ] || { echo "  $tree/latest/$href: $out"; ok=1; }
        done
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return $ok
}

for backend in $backends; do
    dir="$WORK/$backend"
    mkdir -p "$dir"
    db=""
    if [ "$backend" = postgres ]; then
        name="cairn_kill9_$$"
        psql "$CAIRN_TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $name" -qc "CREATE DATABASE $name" >/dev/null
        db="database_url = \"${CAIRN_TEST_POSTGRES_URL%/*}/$name\""
    fi
    cfg="$dir/cairn.toml"
    cat > "$cfg" <<TOML
[server]
data_dir = "$dir/data"
$db
[[repo]]
id = "fx"
[[repo]]
id = "m"
feed = "http://127.0.0.1:$UP/repo/"
[[view]]
name = "all"
repos = ["fx", "m"]
TOML
    # A starting state every operation can work on.
    "$BIN" --config "$cfg" import fx "$WORK/www/a" >/dev/null
    "$BIN" --config "$cfg" repo sync m >/dev/null
    "$BIN" --config "$cfg" snapshot create fx --name base1 >/dev/null
    "$BIN" --config "$cfg" snapshot create fx --name base2 >/dev/null
    ops=(import sync snapshot view-snapshot publish gc)
    clean=0 broken=0 killed=0 finished=0
    for t in $(seq 1 "$TRIALS"); do
        op=${ops[$((RANDOM % ${#ops[@]}))]}
        case $op in
            # Each import brings the set the repository lacks (a, then b, then a
            # again over b: every one adds or replaces N packages).
            import) cmd=(import fx "$WORK/www/$([ $((t % 2)) = 0 ] && echo a || echo b)") ;;
            sync) cmd=(repo sync m) ;;
            snapshot) cmd=(snapshot create fx --name "t$t") ;;
            view-snapshot) cmd=(view snapshot all --name "v$t") ;;
            publish) cmd=(publish fx "base$((t % 2 + 1))" --as prod) ;;
            gc) cmd=(gc --min-age 0s) ;;
        esac
        if [ "$op" = sync ]; then
            if [ "$(readlink "$WORK/www/repo")" = a ]; then next=b; else next=a; fi
            ln -sfn "$next" "$WORK/www/repo"
        fi
        # A delay within the operation's usual duration on this machine: imports and
        # syncs of N packages take a second or more, the rest tens of milliseconds.
        case $op in
            import | sync) most=${SLOW_MAX:-1.2} ;;
            *) most=${FAST_MAX:-0.12} ;;
        esac
        delay=$(python3 -c "import random; print(round(random.uniform(0.0, $most), 3))")
        "$BIN" --config "$cfg" "${cmd[@]}" >/dev/null 2>&1 &
        pid=$!
        sleep "$delay"
        if kill -9 "$pid" 2>/dev/null; then
            killed=$((killed + 1)); how="killed after ${delay}s"
        else
            finished=$((finished + 1)); how="finished before ${delay}s"
        fi
        wait "$pid" 2>/dev/null || true
        problems=""
        "$BIN" --config "$cfg" db verify >/dev/null 2>&1 || problems="$problems verify"
        # Run again: it must succeed (a snapshot the killed run committed exists).
        "$BIN" --config "$cfg" "${cmd[@]}" >/dev/null 2>"$WORK/again.err" \
            || grep -q "already has a snapshot named" "$WORK/again.err" || problems="$problems rerun"
        serves_everything "$cfg" || problems="$problems serve"
        if [ -z "$problems" ]; then
            clean=$((clean + 1)); echo "$backend trial $t: $op $how: clean"
        else
            broken=$((broken + 1)); echo "$backend trial $t: $op $how: BROKEN ($problems)"
        fi
    done
    echo "$backend: $TRIALS trials ($killed killed mid-operation, $finished finished first): $clean clean, $broken broken"
    [ "$backend" = postgres ] && psql "$CAIRN_TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $name" >/dev/null
done
