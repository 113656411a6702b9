# Sourced by scripts/systemd/scenario.sh and scripts/supervisord/check.sh:
# what both ask of the demo at $url, and how both read oha's reports.

now_ms() { date +%s%3N; }

# The served pid: `hello from pid=PID`.
served_pid() { curl -s --max-time 2 "$url/" | sed -n 's/.*pid=\([0-9]*\).*/\1/p'; }

# Waits (bounded: 15 s) until GET / answers from a pid other than $1; prints it.
wait_served_other() {
    local deadline=$(($(now_ms) + 15000)) pid
    while [ "$(now_ms)" -lt $deadline ]; do
        pid=$(served_pid)
        [ -n "$pid" ] && [ "$pid" != "$1" ] && { echo "$pid"; return 0; }
        sleep 0.05
    done
    return 1
}

# oha_report GET_JSON POST_JSON: a `LOAD oha ...` line for each of oha's JSON
# reports; status 1 if any request failed (an error or a non-2xx status) or
# either run answered nothing.
oha_report() {
    python3 - "$1" "$2" <<'PY'
import json, sys
failed = 0
for path, what in zip(sys.argv[1:], ["GET /", "POST /echo"]):
    r = json.load(open(path))
    codes = r.get("statusCodeDistribution", {})
    errors = r.get("errorDistribution", {})
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    bad = sum(v for k, v in codes.items() if not k.startswith("2")) + sum(errors.values())
    print(f"LOAD oha {what} ok={ok} failed={bad} codes={codes} errors={errors}")
    failed += bad + (0 if ok else 1)
sys.exit(1 if failed else 0)
PY
}
