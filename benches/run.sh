#!/bin/sh
# Runs every benchmark on release builds and prints the tables that
# docs/BENCHMARKS.md holds. 13-15 minutes of measuring on 2 cores (plus the
# first release build); --quick takes 4-5.
#
#   benches/run.sh [--quick]
#
# Needs wrk and h2load (Debian/Ubuntu: apt-get install wrk nghttp2-client).
# With oha on PATH (cargo install oha), the restarts-under-load bench loads
# with oha instead. nginx (nginx-light) and haproxy are compared with when
# installed; their rows are skipped otherwise. This script installs nothing.
# --all-features: one build of the library for every bench and example.
set -eu
cd "$(dirname "$0")/.."
PATH="$PATH:/usr/sbin:/sbin"
missing=""
for tool in wrk h2load; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
    echo "missing:$missing (Debian/Ubuntu: apt-get install wrk nghttp2-client)" >&2
    exit 1
fi
for tool in oha nginx haproxy; do
    command -v "$tool" >/dev/null 2>&1 || echo "note: $tool is not installed: its rows are skipped" >&2
done
cargo bench --all-features --bench restart -- "$@"
cargo bench --all-features --bench drain -- "$@"
cargo bench --all-features --bench overhead -- "$@"
cargo bench --all-features --bench under_load -- "$@"
