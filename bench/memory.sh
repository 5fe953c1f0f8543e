#!/usr/bin/env bash
# Peak RSS and wall time of a cold `cairn repo sync` of a generated upstream of N
# packages whose metadata weighs what a distribution's does (FILES files and CHANGELOGS
# changelog entries per package), with policy = "immediate" (every package downloaded)
# and policy = "on_demand" (metadata only), and of `cairn import` of the same files into
# a local repository, for each N. GNU time gives the peak RSS of
# the whole process. The upstream is served by nginx on a free loopback port; each
# sync writes into a new data dir in the working directory.
#
# Usage: [FILES=40] [CHANGELOGS=20] bench/memory.sh [N ...]   (default: 10000 50000 100000)
# Needs: cargo, createrepo_c, nginx, GNU time.
set -euo pipefail
COUNTS=("$@")
[ ${#COUNTS[@]} -eq 0 ] && COUNTS=(10000 50000 100000)
FILES=${FILES:-40}
CHANGELOGS=${CHANGELOGS:-20}
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_workdir
mkdir -p "$WORK/www"
chmod -R a+rX "$WORK/www"
start_nginx "$WORK" "$WORK/www" "$PORT"

echo "$FILES files and $CHANGELOGS changelog entries per package; not pinned"
printf '%-9s %-10s %14s %9s %12s\n' packages policy "metadata MiB" seconds "peak RSS MiB"
for N in "${COUNTS[@]}"; do
    REPO=$WORK/www/r$N
    "$BIN" generate "$REPO" --count "$N" --files "$FILES" --changelogs "$CHANGELOGS" >/dev/null
    createrepo_c --no-database --quiet --workers 2 "$REPO"
    chmod -R a+rX "$WORK/www"
    META=$(du -sm "$REPO/repodata" | cut -f1)
    for POLICY in on_demand immediate; do
        read -r secs rss < <(timed_sync "$WORK/$N-$POLICY" "http://127.0.0.1:$PORT/r$N/" "$POLICY")
        printf '%-9s %-10s %14s %9.2f %12d\n' "$N" "$POLICY" "$META" "$secs" "$rss"
    done
    # The same files imported into a local repository.
    D=$WORK/$N-import
    mkdir -p "$D"
    printf '[server]\ndata_dir = "%s/data"\n[[repo]]\nid = "local"\n' "$D" > "$D/cairn.toml"
    /usr/bin/time -f "%e %M" -o "$D/time.out" \
        "$BIN" --config "$D/cairn.toml" import local "$REPO" >/dev/null 2>"$D/err" \
        || { cat "$D/err"; exit 1; }
    read -r secs rss < "$D/time.out"
    printf '%-9s %-10s %14s %9.2f %12d\n' "$N" import "$META" "$secs" $((rss / 1024))
    rm -rf "$D" "$REPO"
done
