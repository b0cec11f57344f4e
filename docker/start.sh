#!/bin/sh
# /usr/local/src/start.sh -- the image's default command: the open-runtimes executor's v2
# path. The executor mounts the build's archive at /tmp/code.tar.gz and the code folder
# at /usr/code, sets INTERNAL_RUNTIME_KEY and INTERNAL_RUNTIME_ENTRYPOINT, and runs the
# image's command. This is `pyrt launch --contract v2`: the archive extracted safely into
# /usr/code, served on port 3000 (PORT overrides). Extra arguments go to pyrt launch.
#
# Started as root, every worker -- all user code -- runs as the user pyrt (PYRT_USER).
set -eu

if [ "$(id -u)" -eq 0 ]; then
    set -- --user "${PYRT_USER:-pyrt}" "$@"
fi
exec pyrt launch --contract v2 "$@"
