#!/bin/sh
# /usr/local/src/launch.sh -- the seed's run step, in the image:
#
#   docker run -p 3000:3000 -e INTERNAL_RUNTIME_KEY=... --rm -v $(pwd)/code.tar.gz:/tmp/code.tar.gz python-runtime:3.10 /usr/local/src/launch.sh
#
# `pyrt launch` with the seed's defaults (pyrt's own): extracts /tmp/code.tar.gz safely
# into /usr/code and serves it on port 3000 (PORT overrides), the key from
# INTERNAL_RUNTIME_KEY. Extra arguments go to pyrt launch (--workers 4, --max-memory 256).
#
# Users: started as root (the image's default), pyrt extracts as root and runs every
# worker -- all user code -- as the unprivileged user pyrt (PYRT_USER overrides), while
# the master, which holds the key, stays out of the workers' reach. Started as non-root
# (docker run --user), everything runs as that user.
set -eu

if [ "$(id -u)" -eq 0 ]; then
    exec pyrt launch --user "${PYRT_USER:-pyrt}" "$@"
fi
exec pyrt launch "$@"
