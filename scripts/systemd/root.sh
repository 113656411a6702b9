#!/usr/bin/env bash
# Builds a minimal Debian bookworm root with systemd 254 (bookworm-backports)
# that systemd-nspawn can boot, into the directory given (a cache: reused as is
# when a previous run completed it). Needs root. Installs the host packages it
# needs (debootstrap, systemd-container) with apt when they are missing.
#
#   scripts/systemd/root.sh /var/cache/handoff/systemd-root
#
# About 2-3 minutes and ~300 MB the first time; instant afterwards.
set -euo pipefail

usage() { echo "usage: $0 ROOT_DIR" >&2; exit 2; }
[ $# -eq 1 ] || usage
root=$(realpath -m "$1")
marker="$root/.handoff-root-complete"
# Bump when what goes into the root changes: an older cache is rebuilt.
version=1

if [ -f "$marker" ] && [ "$(cat "$marker")" = "$version" ]; then
    echo "root.sh: $root is complete (reused)"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "root.sh: needs root" >&2; exit 1; }

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
if [ ${#need[@]} -gt 0 ]; then
    echo "root.sh: installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q --no-install-recommends "${need[@]}" \
        || { timeout 300 apt-get update -q && DEBIAN_FRONTEND=noninteractive timeout 300 \
             apt-get install -y -q --no-install-recommends "${need[@]}"; }
fi

# The mirror apt already uses (the only network these machines reach).
mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Codename: bookworm' 'Created-By: Packages' | head -n1)
mirror=${mirror:-http://deb.debian.org/debian/}

# Build beside the target and rename at the end: an interrupted build never
# looks complete. One build at a time per cache directory.
mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
timeout 600 flock 9 || { echo "root.sh: $root.lock held for 10 minutes" >&2; exit 1; }
if [ -f "$marker" ] && [ "$(cat "$marker")" = "$version" ]; then
    echo "root.sh: $root is complete (built meanwhile)"
    exit 0
fi
work="$root.partial"
rm -rf "$work"
started=$(date +%s)

echo "root.sh: debootstrap bookworm from $mirror into $work"
timeout 900 debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,procps \
    bookworm "$work" "$mirror" >"$root.debootstrap.log" 2>&1 \
    || { tail -n 20 "$root.debootstrap.log" >&2; exit 1; }

# In the root (not booted): systemd 254 from backports, a machine id, a
# persistent journal the host can read.
echo "deb $mirror bookworm-backports main" >"$work/etc/apt/sources.list.d/backports.list"
# (systemd-nspawn may warn "Attempted to remove disk file system under
# /run/systemd/nspawn/propagate/...": harmless, filtered out.)
in_root() {
    timeout 600 systemd-nspawn --quiet --register=no --keep-unit -D "$work" \
        --setenv=DEBIAN_FRONTEND=noninteractive "$@" 2> >(grep -v 'nspawn/propagate' >&2)
}
in_root apt-get update -q
in_root apt-get install -y -q --no-install-recommends -t bookworm-backports systemd systemd-sysv
in_root apt-get clean
in_root systemd-machine-id-setup
mkdir -p "$work/var/log/journal"
# Nothing to log in on, nothing to wait for: the boot reaches `running` sooner.
in_root systemctl mask console-getty.service getty@.service systemd-networkd-wait-online.service \
    >/dev/null 2>&1 || true

systemd_version=$(dpkg-query --admindir="$work/var/lib/dpkg" -W -f '${Version}' systemd)
echo "root.sh: systemd $systemd_version"
if ! dpkg --compare-versions "$systemd_version" ge 254; then
    echo "root.sh: expected systemd >= 254 (Type=notify-reload)" >&2
    exit 1
fi

rm -rf "$root"
mv "$work" "$root"
echo "$version" >"$marker"
echo "root.sh: $root built in $(($(date +%s) - started)) s, $(du -sh "$root" | cut -f1)"
