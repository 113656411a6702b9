#!/usr/bin/env bash
# The demo under real supervisord, with docs/deploy/supervisord/demo.conf (its
# binary path, port and log paths replaced): reloads with
# `supervisorctl signal HUP` under oha load (GET, and POST with a body), then
# `supervisorctl stop` with a 2 s request in flight. Prints what it saw as
# KEY ... lines; exit status 0 when every check held (0 failed requests, a new
# worker after each reload, the program's pid unchanged, the slow request
# completed, the program STOPPED with exit status 0).
#
#   scripts/supervisord/check.sh DEMO_BINARY [PORT]
#
# Needs supervisord (Debian: apt-get install supervisor) and oha on PATH.
set -uo pipefail

[ $# -ge 1 ] || { echo "usage: $0 DEMO_BINARY [PORT]" >&2; exit 2; }
demo=$(realpath "$1")
port=${2:-18090}
here=$(dirname "$(realpath "$0")")
conf_src=$(realpath "$here/../../docs/deploy/supervisord/demo.conf")
work=$(mktemp -d /tmp/handoff-supervisord.XXXXXX)
url="http://127.0.0.1:$port"
. "$here/../demo-client.sh"
ctl() { timeout 60 supervisorctl -c "$work/supervisord.conf" "$@"; }
ok=1
fail() { echo "FAIL: $*"; ok=0; }
pids=()
supervisord_pid=""
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    if [ -n "$supervisord_pid" ]; then
        ctl stop all >/dev/null 2>&1
        kill "$supervisord_pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$supervisord_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$supervisord_pid" 2>/dev/null
        wait "$supervisord_pid" 2>/dev/null
    fi
    # Whatever the program left behind (a generation supervisord did not
    # stop; it gives each program its own process group): by its port.
    for p in $(pgrep -f -- "--listen 127.0.0.1:$port"); do
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$(basename "$demo" | cut -c1-15)" ] && kill -KILL "$p"
    done
    rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/supervisord.conf" <<CONF
[unix_http_server]
file=$work/supervisor.sock
[supervisord]
nodaemon=true
logfile=$work/supervisord.log
pidfile=$work/supervisord.pid
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://$work/supervisor.sock
CONF
sed -e "s|/usr/local/bin/demo|$demo|" -e "s|127\.0\.0\.1:8080|127.0.0.1:$port|" \
    -e "s|/var/log/|$work/|" "$conf_src" >>"$work/supervisord.conf"
# In the foreground, as the script's child: it stays in the script's process
# group, and so does every process it starts.
supervisord -c "$work/supervisord.conf" >/dev/null 2>&1 &
supervisord_pid=$!
for _ in $(seq 300); do
    ctl status >/dev/null 2>&1 && break
    kill -0 "$supervisord_pid" 2>/dev/null || { echo "FAIL: supervisord did not start"; exit 1; }
    sleep 0.1
done
echo "SUPERVISORD $(supervisord --version)"

program_pid() { ctl pid demo; }

first=$(wait_served_other 0) || { fail "never served"; exit 1; }
program=$(program_pid)
echo "START program_pid=$program served_pid=$first"

oha -z 60s -c 12 -w --no-tui --output-format json -o "$work/get.json" "$url/" &
pids+=($!)
oha -z 60s -c 4 -w --no-tui --output-format json -o "$work/post.json" \
    -m POST -d 'a request body for /echo' "$url/echo" &
pids+=($!)
sleep 0.5
for i in 1 2 3 4 5; do
    before=$(served_pid)
    t0=$(now_ms)
    ctl signal HUP demo >/dev/null
    status=$?
    served=$(wait_served_other "$before") || served="(none: still $before)"
    echo "RELOAD $i exit=$status new_served_after_ms=$(($(now_ms) - t0)) served_pid=$before->$served" \
        "program_pid=$(program_pid)"
    [ "$status" -eq 0 ] || fail "reload $i: supervisorctl exit $status"
    case "$served" in "(none"*) fail "reload $i: nothing new serves" ;; esac
    sleep 0.5
done
kill -INT "${pids[@]}" 2>/dev/null
for p in "${pids[@]}"; do wait "$p"; done
pids=()
oha_report "$work/get.json" "$work/post.json" || fail "requests failed under load"
[ "$(program_pid)" = "$program" ] || fail "the program's pid changed: supervisord restarted it"

curl -s --max-time 10 -o "$work/sleep.out" -w '%{http_code}' "$url/sleep?duration=2s" >"$work/sleep.code" &
curl_pid=$!
pids+=($curl_pid)
deadline=$(($(now_ms) + 5000))
until grep -q "sleeping 2s" "$work/demo.out" 2>/dev/null; do
    [ "$(now_ms)" -lt $deadline ] || { fail "the 2 s request never started"; break; }
    sleep 0.02
done
t0=$(now_ms)
ctl stop demo >/dev/null
stop_status=$?
t1=$(now_ms)
wait "$curl_pid"
curl_status=$?
pids=()
echo "STOP exit=$stop_status stop_ms=$((t1 - t0)) slow_request=curl:$curl_status" \
    "http:$(cat "$work/sleep.code") body='$(cat "$work/sleep.out")'"
[ "$curl_status" -eq 0 ] && [ "$(cat "$work/sleep.code")" = 200 ] || fail "the 2 s request was cut"
final=$(ctl status demo | awk '{print $2}')
exited=$(grep -c "stopped: demo (exit status 0)" "$work/supervisord.log")
echo "FINAL state=$final clean_exit=$exited"
[ "$final" = STOPPED ] && [ "$exited" -eq 1 ] || fail "not stopped cleanly"
[ $ok -eq 1 ]
