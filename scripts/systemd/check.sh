#!/usr/bin/env bash
# Every unit of docs/deploy/systemd under real systemd 254: builds (or reuses)
# the root, builds the demo in release, then one fresh container per unit runs
# scenario.sh. Prints the figures; exit status 1 if any unit failed a check.
#
#   scripts/systemd/check.sh [ROOT_DIR] [PORT]
#
# ROOT_DIR defaults to /var/cache/handoff/systemd-root, PORT to 18080 (it must
# be free on the host: the container shares the host's network).
# About 10 s per unit once the root exists (2-3 min to build it).
set -uo pipefail
here=$(dirname "$(realpath "$0")")
repo=$(realpath "$here/../..")
root=${1:-/var/cache/handoff/systemd-root}
port=${2:-18080}
target=${CARGO_TARGET_DIR:-$repo/target}

"$here/root.sh" "$root" || exit 1
(cd "$repo" && cargo build --release --quiet --example demo --features tokio,hyper,tls,metrics) || exit 1
bin=$(mktemp -d /tmp/handoff-bin.XXXXXX)
trap 'rm -rf "$bin"' EXIT

status=0
for unit in reexec-notify reexec-notify-reload supervise-notify supervise-notify-reload; do
    out=$(mktemp /tmp/handoff-check.XXXXXX)
    cp "$target/release/examples/demo" "$bin/demo"
    "$here/boot.sh" --bind-ro "$bin:/usr/local/bin" --host "$root" -- \
        "$here/scenario.sh" "$repo/docs/deploy/systemd/$unit.service" "$port" "$bin" >"$out" 2>&1
    rc=$?
    echo "== $unit: $([ $rc -eq 0 ] && echo ok || echo FAILED)"
    if [ $rc -eq 0 ]; then
        grep -v '^\[' "$out" | sed -n '/^--- journal/q;p'
    else
        cat "$out"
        status=1
    fi
    rm -f "$out"
done
exit $status
