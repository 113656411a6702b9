#!/usr/bin/env bash
# One run of the demo under real systemd, from the host, inside a container
# booted by boot.sh --host (it reads SYSD_ROOT and SYSD_LEADER):
#   1. installs docs/deploy/systemd/demo.socket and the given service file as
#      demo.service (their 127.0.0.1:8080 replaced by 127.0.0.1:PORT), starts both;
#   2. loads 127.0.0.1:PORT with oha (GET, and POST /echo with a body) while
#      doing RELOADS `systemctl reload`s, each once the previous one is done
#      (GET / answers from another pid);
#   3. still under load, installs a bad build at ExecStart's path (it exits at
#      once) and reloads: the failure must show in StatusText, the unit stay
#      active on the same MainPID and served pid; then puts the good build
#      back and reloads once more;
#   4. `systemctl stop demo.service demo.socket` with a 1 s request in flight;
#   5. starts again, reloads once, SIGKILLs the main process: systemd must
#      notice and restart the unit (Restart=on-failure); stops;
#   6. prints what it saw as KEY=VALUE lines, and the journal of the unit.
#
#   scripts/systemd/boot.sh --bind-ro BIN:/usr/local/bin --host ROOT -- \
#       scripts/systemd/scenario.sh docs/deploy/systemd/reexec-notify.service 18080 BIN
#
# BIN is a host directory holding the demo binary as `demo`, bound at
# /usr/local/bin inside; the script swaps the file in BIN for the bad build
# (by rename, so running processes keep theirs) and back. Exit status 0 when
# every check held (0 failed requests, reloads exited 0, the bad build was
# refused with the service unharmed, the 1 s request completed, the unit ended
# inactive), 1 otherwise.
set -uo pipefail

[ $# -ge 3 ] || { echo "usage: $0 SERVICE_FILE PORT BIN [RELOADS]" >&2; exit 2; }
service_file=$1
port=$2
bin=$3
reloads=${4:-5}
[ -x "$bin/demo" ] || { echo "scenario.sh: no executable $bin/demo" >&2; exit 2; }
: "${SYSD_ROOT:?run under boot.sh --host}" "${SYSD_LEADER:?run under boot.sh --host}"
here=$(dirname "$(realpath "$0")")
units=$(realpath "$here/../../docs/deploy/systemd")
url="http://127.0.0.1:$port"
. "$here/../demo-client.sh"
inside() { timeout 60 nsenter -t "$SYSD_LEADER" -a "$@"; }
ok=1
fail() { echo "FAIL: $*"; ok=0; }

oha_pid=""
oha_post_pid=""
curl_pid=""
cleanup() {
    [ -f "$work/demo.good" ] && mv -f "$work/demo.good" "$bin/demo"
    [ -n "$oha_pid" ] && kill "$oha_pid" 2>/dev/null && wait "$oha_pid" 2>/dev/null
    [ -n "$oha_post_pid" ] && kill "$oha_post_pid" 2>/dev/null && wait "$oha_post_pid" 2>/dev/null
    [ -n "$curl_pid" ] && kill "$curl_pid" 2>/dev/null && wait "$curl_pid" 2>/dev/null
    inside systemctl stop demo.service demo.socket >/dev/null 2>&1
}
trap cleanup EXIT
work=$(mktemp -d /tmp/handoff-scenario.XXXXXX)
trap 'cleanup; rm -rf "$work"' EXIT


etc="$SYSD_ROOT/etc/systemd/system"
sed "s/127\.0\.0\.1:8080/127.0.0.1:$port/" "$units/demo.socket" >"$etc/demo.socket"
sed "s/127\.0\.0\.1:8080/127.0.0.1:$port/" "$service_file" >"$etc/demo.service"
inside systemctl reset-failed demo.service demo.socket >/dev/null 2>&1
inside systemctl daemon-reload
journal_since=$(inside date '+%Y-%m-%d %H:%M:%S')
inside systemctl start demo.socket demo.service || fail "start"
echo "UNIT=$(basename "$service_file")"
echo "SYSTEMD=$(inside systemctl --version | head -n1)"

pid=$(wait_served_other 0) || { fail "never served"; exit 1; }
main=$(inside systemctl show -P MainPID demo.service)
echo "START main_pid=$main served_pid=$pid"

# Load for the whole reload phase (ended below): GETs, and POSTs with a body
# (a client must never see a POST fail: it cannot be retried).
oha -z 120s -c 12 -w --no-tui --output-format json -o "$work/oha.json" "$url/" &
oha_pid=$!
oha -z 120s -c 4 -w --no-tui --output-format json -o "$work/oha-post.json" \
    -m POST -d 'a request body for /echo' "$url/echo" &
oha_post_pid=$!
sleep 0.5   # pacing: load before the first reload (and oha has its SIGINT handler)
reload() {   # reload LABEL: a good reload; prints its line
    local before_main before_served t0 t1 t2 status served after_main state
    before_main=$(inside systemctl show -P MainPID demo.service)
    before_served=$(served_pid)
    t0=$(now_ms)
    inside systemctl reload demo.service
    status=$?
    t1=$(now_ms)
    served=$(wait_served_other "$before_served") || served="(none: still $before_served)"
    t2=$(now_ms)
    # MainPID once the new generation said READY=1 (it may lag the served pid).
    after_main=$(inside systemctl show -P MainPID demo.service)
    state=$(inside systemctl show -P ActiveState demo.service)
    echo "RELOAD $1 exit=$status reload_ms=$((t1 - t0)) new_served_after_ms=$((t2 - t0))" \
        "main_pid=$before_main->$after_main served_pid=$before_served->$served state=$state"
    [ "$status" -eq 0 ] || fail "reload $1 exit $status"
    case "$served" in "(none"*) fail "reload $1: nothing new serves" ;; esac
    [ "$state" = active ] || fail "reload $1: unit $state"
    sleep 0.5   # pacing: the new generation serves the load a while before the next reload
}
for i in $(seq "$reloads"); do reload "$i"; done

# A bad build at ExecStart's path: it exits at once. The reload must fail
# visibly (StatusText), and the generation serving must serve on.
cp -p "$bin/demo" "$work/demo.good"
printf '#!/bin/sh\necho "demo: a broken build" >&2\nexit 3\n' >"$bin/demo.bad"
chmod 755 "$bin/demo.bad"
mv -f "$bin/demo.bad" "$bin/demo"
before_main=$(inside systemctl show -P MainPID demo.service)
before_served=$(served_pid)
t0=$(now_ms)
inside systemctl reload demo.service
status=$?
t1=$(now_ms)
deadline=$(($(now_ms) + 30000))
text=""
until [[ "$text" == *"restart failed"* ]]; do
    [ "$(now_ms)" -lt $deadline ] || break
    sleep 0.05
    text=$(inside systemctl show -P StatusText demo.service)
done
t2=$(now_ms)
after_main=$(inside systemctl show -P MainPID demo.service)
after_served=$(served_pid)
state=$(inside systemctl show -P ActiveState demo.service)
echo "BAD_RELOAD exit=$status reload_ms=$((t1 - t0)) failure_shown_after_ms=$((t2 - t0))" \
    "main_pid=$before_main->$after_main served_pid=$before_served->$after_served state=$state" \
    "status_text='$text'"
[[ "$text" == *"restart failed"* ]] || fail "the bad build's failure never showed in StatusText"
[ "$state" = active ] || fail "bad build: unit $state"
[ "$after_main" = "$before_main" ] || fail "bad build: MainPID moved $before_main->$after_main"
[ "$after_served" = "$before_served" ] || fail "bad build: served pid $before_served->$after_served"
mv -f "$work/demo.good" "$bin/demo"
sleep 0.5
reload good-again

kill -INT "$oha_pid" "$oha_post_pid" 2>/dev/null   # ends the load now; -w lets requests in flight finish
wait "$oha_pid"
wait "$oha_post_pid"
oha_pid=""
oha_post_pid=""
oha_report "$work/oha.json" "$work/oha-post.json"
[ $? -eq 0 ] || fail "requests failed under load"

# Stop with a 1 s request in flight.
curl -s --max-time 10 -o "$work/sleep.out" -w '%{http_code}' "$url/sleep?duration=1s" >"$work/sleep.code" 2>"$work/sleep.err" &
curl_pid=$!
deadline=$(($(now_ms) + 5000))
until journalctl -D "$SYSD_ROOT/var/log/journal" -u demo.service --since "$journal_since" -q -o cat 2>/dev/null \
    | grep -q "sleeping 1s"; do
    [ "$(now_ms)" -lt $deadline ] || { fail "the 1 s request never started"; break; }
    sleep 0.02
done
main=$(inside systemctl show -P MainPID demo.service)
t0=$(now_ms)
inside systemctl stop demo.service demo.socket
stop_status=$?
t1=$(now_ms)
wait "$curl_pid"
curl_status=$?
curl_pid=""
echo "STOP exit=$stop_status stop_ms=$((t1 - t0)) main_pid_was=$main" \
    "sleep_request=curl:$curl_status http:$(cat "$work/sleep.code") body='$(tr -d '\n' <"$work/sleep.out" 2>/dev/null)'"
[ "$curl_status" -eq 0 ] && [ "$(cat "$work/sleep.code")" = 200 ] || fail "the 1 s request was cut"
active=$(inside systemctl show -P ActiveState demo.service)
result=$(inside systemctl show -P Result demo.service)
echo "FINAL state=$active result=$result"
[ "$active" = inactive ] || fail "unit ended $active ($result)"
# What systemd logged so far: warnings, "not our child", SIGKILLs.
journal() {
    journalctl -D "$SYSD_ROOT/var/log/journal" --since "$journal_since" -q -o short-monotonic "$@" \
        _SYSTEMD_UNIT=demo.service + UNIT=demo.service + UNIT=demo.socket 2>/dev/null
}
journal_counts() {
    echo "$1 $2 warnings=$(journal -p warning | wc -l)" \
        "not_our_child=$(journal | grep -c 'which is not our child')" \
        "sigkill=$(journal | grep -c 'with signal SIGKILL')"
}
journal_counts JOURNAL before_crash

# Started again and reloaded once (so that in the re-exec model the main
# process is a generation systemd did not start itself), then a crash (no
# load: a SIGKILL cuts what is in flight): systemd must see its main process
# die and restart the unit (Restart=on-failure); the socket unit holds the
# connections meanwhile.
inside systemctl start demo.socket demo.service || fail "start again"
first=$(wait_served_other 0) || fail "never served again"
reload crash-setup
crashed=$(inside systemctl show -P MainPID demo.service)
restarts=$(inside systemctl show -P NRestarts demo.service)
inside kill -KILL "$crashed"
deadline=$(($(now_ms) + 15000))
t0=$(now_ms)
now_main=$crashed
now_restarts=$restarts
while [ "$(now_ms)" -lt $deadline ]; do
    now_restarts=$(inside systemctl show -P NRestarts demo.service)
    now_main=$(inside systemctl show -P MainPID demo.service)
    [ "$now_restarts" -gt "$restarts" ] && [ "$now_main" != 0 ] && [ "$now_main" != "$crashed" ] && break
    sleep 0.05
done
served=$(served_pid)
echo "CRASH main_pid=$crashed->$now_main restarts=$restarts->$now_restarts" \
    "restarted_after_ms=$(($(now_ms) - t0)) served_pid=$served" \
    "state=$(inside systemctl show -P ActiveState demo.service)"
[ "$now_restarts" -gt "$restarts" ] || fail "systemd did not restart the unit after its main process died"
[ -n "$served" ] || fail "nothing serves after the restart"

inside systemctl stop demo.service demo.socket
[ "$(inside systemctl show -P ActiveState demo.service)" = inactive ] || fail "not inactive after the crash phase"

journal_counts JOURNAL all
echo "--- journal (demo.service, this run)"
journal | tail -n 80
[ $ok -eq 1 ]
