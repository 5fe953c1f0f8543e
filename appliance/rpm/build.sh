#!/usr/bin/env bash
# Builds cairn-<version>-<release>.<arch>.rpm from a compiled binary.
#
#   appliance/rpm/build.sh [BINARY] [OUTDIR]
#
# BINARY defaults to target/release/cairn (built with `cargo build --release` if
# missing); OUTDIR to target/rpm. Needs rpmbuild and strip (binutils). Prints the path
# of the package it wrote.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
top="$(cd "$here/../.." && pwd)"
bin="${1:-$top/target/release/cairn}"
out="${2:-$top/target/rpm}"
if [ ! -x "$bin" ]; then
    if [ $# -ge 1 ]; then
        echo "build.sh: $bin is not an executable file" >&2
        exit 1
    fi
    (cd "$top" && cargo build --release --locked)
fi
for tool in rpmbuild strip; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool is needed (packages rpm, binutils)" >&2; exit 1; }
done
version="$("$bin" --version | awk '{print $2}')"
case "$version" in
    [0-9]*) ;;
    *) echo "build.sh: cannot read the version from '$bin --version'" >&2; exit 1 ;;
esac
arch="$(uname -m)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
src="$work/SOURCES"
mkdir -p "$src/man" "$src/completions" "$out"
cp "$bin" "$src/cairn"
strip --strip-debug "$src/cairn"
"$src/cairn" man "$src/man" >/dev/null
"$src/cairn" completions bash > "$src/completions/cairn.bash"
"$src/cairn" completions zsh > "$src/completions/_cairn"
"$src/cairn" completions fish > "$src/completions/cairn.fish"
cp "$top"/appliance/cairn.service "$top"/appliance/cairn-gc.service \
   "$top"/appliance/cairn-gc.timer "$top"/appliance/cairn-verify.service \
   "$top"/appliance/cairn-verify.timer "$top"/appliance/cairn.sysusers \
   "$top"/appliance/cairn.tmpfiles "$top"/appliance/cairn.toml \
   "$top"/appliance/cairn.env "$top"/appliance/grafana/cairn-dashboard.json \
   "$top"/appliance/prometheus/cairn-alerts.yml \
   "$top"/appliance/prometheus/prometheus.yml \
   "$top"/config/cairn.example.toml "$top"/README.md "$src/"

rpmbuild -bb "$here/cairn.spec" \
    --quiet \
    --target "$arch" \
    --define "_topdir $work" \
    --define "_sourcedir $src" \
    --define "_rpmdir $out" \
    --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
    --define "cairn_version $version" \
    >&2
ls -t "$out"/cairn-"$version"-*."$arch".rpm | head -n 1
