#!/bin/bash
# helpers/server.sh -- the v5 server, as helpers/start.sh runs it: pyrt serve
# --contract v5 on the extracted function, port 3000 (PORT overrides), the secret from
# OPEN_RUNTIMES_SECRET, logs into /mnt/logs, /__opr/timings from /mnt/telemetry/timings.txt,
# one worker per CPU of OPEN_RUNTIMES_CPUS (rounded up; default: the CPUs pyrt may use).
# Started as root, every worker -- all user code -- runs as the user pyrt (PYRT_USER).
set -euo pipefail

args=(serve --contract v5 --code-dir /usr/local/server/src/function
      --logs-dir /mnt/logs --telemetry-file /mnt/telemetry/timings.txt)
if [ -n "${OPEN_RUNTIMES_CPUS:-}" ]; then
    args+=(--workers "$(awk -v c="$OPEN_RUNTIMES_CPUS" \
        'BEGIN { w = int(c + 0.999999); print (w < 1 ? 1 : w) }')")
fi
if [ "$(id -u)" -eq 0 ]; then
    args+=(--user "${PYRT_USER:-pyrt}")
fi
exec pyrt "${args[@]}"
