#!/bin/bash
# helpers/start.sh "<start command>" -- the open-runtimes v5 start, run by the executor
# (working directory /usr/local/server):
#
#   cp /tmp/code.tar.gz /mnt/code/code.tar.gz && nohup helpers/start.sh "bash helpers/server.sh"
#
# Extracts /mnt/code/code.tar (else code.tar.gz; gzip or plain, told apart by their bytes)
# safely into src/function (a link into /tmp, so that a read-only image works), takes the
# entry point the build recorded, then runs the start command, passing its output on.
# Appends extract=, prepare= and, when the server prints its start line, startup= (seconds)
# to /mnt/telemetry/timings.txt, as open-runtimes' own start does.
set -euo pipefail

say() { printf '[pyrt] %s\n' "$*"; }
fail() { printf '[pyrt] %s\n' "$*" >&2; exit 1; }
uptime_now() { awk '{print $1}' /proc/uptime; }
since() { awk -v a="$1" -v b="$(uptime_now)" 'BEGIN { printf "%.3f", b - a }'; }
telemetry=/mnt/telemetry/timings.txt
record() { # NAME SECONDS: a missing or read-only telemetry folder is no reason to fail
    { mkdir -p "${telemetry%/*}" && printf '%s=%s\n' "$1" "$2" >> "$telemetry"; } 2>/dev/null || true
}

[ $# -ge 1 ] && [ -n "$1" ] || fail 'usage: helpers/start.sh "<start command>", e.g. "bash helpers/server.sh"'

archive=
for name in code.tar code.tar.gz; do
    if [ -f "/mnt/code/$name" ]; then archive=/mnt/code/$name; break; fi
done
[ -n "$archive" ] || fail "Code archive not found: neither /mnt/code/code.tar nor /mnt/code/code.tar.gz."

say "Code extraction started."
began=$(uptime_now)
function_dir=$(readlink -m /usr/local/server/src/function)
mkdir -p "$function_dir"
pyrt launch --extract-only --archive "$archive" --code-dir "$function_dir"
record extract "$(since "$began")"
say "Code extraction finished."

# The build's record, read as data (open-runtimes sources it as a script; this file
# comes from the function's build, so no line of it is run here).
began=$(uptime_now)
if [ -f "$function_dir/.open-runtimes" ]; then
    built=$(sed -n 's/^OPEN_RUNTIMES_ENTRYPOINT=//p' "$function_dir/.open-runtimes" | tail -n 1)
    [ -z "$built" ] || export OPEN_RUNTIMES_ENTRYPOINT="$built"
fi
record prepare "$(since "$began")"

watch_start() { # passes lines on; times the first start line
    local line seen=false
    while IFS= read -r line; do
        printf '%s\n' "$line"
        if [ "$seen" = false ] && [[ $line == *"HTTP server successfully started"* ]]; then
            record startup "$(since "$started")"
            seen=true
        fi
    done
}
started=$(uptime_now)
bash -c "$1" > >(watch_start) 2>&1 &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true' TERM INT
status=0
while kill -0 "$server" 2>/dev/null; do
    wait "$server" && status=0 || status=$?
done
exit "$status"
