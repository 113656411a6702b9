#!/usr/bin/env bash
# Boots a root made by root.sh with systemd-nspawn (systemd as PID 1 of a
# container that shares the host's network), waits until systemctl answers,
# runs a command, then powers the container off. Needs root.
#
#   scripts/systemd/boot.sh [--bind-ro HOST:CONTAINER]... [--host] ROOT -- CMD [ARG]...
#
# Without --host, CMD runs inside the container (all its namespaces).
# With --host, CMD runs on the host with SYSD_ROOT (the root directory) and
# SYSD_LEADER (the host pid of the container's systemd) in its environment:
# `nsenter -t "$SYSD_LEADER" -a systemctl ...` reaches the container's systemd,
# and 127.0.0.1 is the same on both sides. The exit status is CMD's.
# The container's journal stays in ROOT/var/log/journal (read it with
# `journalctl -D ROOT/var/log/journal`).
set -euo pipefail

usage() { echo "usage: $0 [--bind-ro HOST:CONTAINER]... [--host] ROOT -- CMD [ARG]..." >&2; exit 2; }
binds=()
on_host=0
while [ $# -gt 0 ]; do
    case "$1" in
    --bind-ro) [ $# -ge 2 ] || usage; binds+=("--bind-ro=$2"); shift 2 ;;
    --bind-ro=*) binds+=("$1"); shift ;;
    --host) on_host=1; shift ;;
    --) usage ;;
    -*) usage ;;
    *) break ;;
    esac
done
[ $# -ge 3 ] && [ "$2" = "--" ] || usage
root=$(realpath "$1")
shift 2
[ -f "$root/.handoff-root-complete" ] || { echo "boot.sh: $root is not a root made by root.sh" >&2; exit 1; }

BOOT_TIMEOUT=${BOOT_TIMEOUT:-30}   # seconds until systemctl answers
STOP_TIMEOUT=${STOP_TIMEOUT:-30}   # seconds for the poweroff

log=$(mktemp /tmp/handoff-nspawn.XXXXXX.log)
nspawn=""
leader=""

# The container's systemd, by its host pid, once systemd-nspawn forked it.
find_leader() {
    local children
    children=$(cat "/proc/$nspawn/task/$nspawn/children" 2>/dev/null || true)
    leader=${children%% *}
    [ -n "$leader" ]
}

poweroff() {
    [ -n "$nspawn" ] && kill -0 "$nspawn" 2>/dev/null || return 0
    if [ -n "$leader" ]; then
        timeout 10 nsenter -t "$leader" -a systemctl poweroff --no-block >/dev/null 2>&1 || true
    else
        kill -TERM "$nspawn" 2>/dev/null || true   # nspawn asks the container to halt
    fi
    for _ in $(seq $((STOP_TIMEOUT * 10))); do
        kill -0 "$nspawn" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$nspawn" 2>/dev/null; then
        echo "boot.sh: container did not power off in ${STOP_TIMEOUT}s; killing systemd-nspawn $nspawn" >&2
        kill -KILL "$nspawn" 2>/dev/null || true
    fi
    wait "$nspawn" 2>/dev/null || true
    nspawn=""
}
cleanup() {
    local status=$?
    poweroff
    rm -f "$log"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

systemd-nspawn --quiet --register=no --keep-unit -D "$root" --console=passive \
    "${binds[@]}" -b </dev/null >"$log" 2>&1 &
nspawn=$!

# Bounded waits: the leader exists, its private bus socket exists (before it
# systemctl races the boot), then systemctl answers.
deadline=$((SECONDS + BOOT_TIMEOUT))
until find_leader && [ -S "/proc/$leader/root/run/systemd/private" ]; do
    if ! kill -0 "$nspawn" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
        echo "boot.sh: container did not come up in ${BOOT_TIMEOUT}s" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.05
done
state=$(timeout "$BOOT_TIMEOUT" nsenter -t "$leader" -a systemctl is-system-running --wait 2>/dev/null || true)
case "$state" in
running | degraded) ;;
*) echo "boot.sh: system state '$state' after boot" >&2; exit 1 ;;
esac

set +e
if [ $on_host -eq 1 ]; then
    SYSD_ROOT=$root SYSD_LEADER=$leader "$@"
else
    nsenter -t "$leader" -a "$@"
fi
status=$?
set -e
exit "$status"
