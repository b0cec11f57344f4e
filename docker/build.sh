#!/bin/sh
# /usr/local/src/build.sh -- the seed's build step, in the image:
#
#   docker run --rm -v $(pwd):/usr/code/ -e ENTRYPOINT_NAME=index.py python-runtime:3.10 /usr/local/src/build.sh
#
# Prepares the bind-mounted folder in place with `pyrt build /usr/code`: runtime-env/ (a
# venv of the image's Python with requirements.txt installed), bytecode, a checked entry
# point (ENTRYPOINT_NAME, else main.py, else index.py). Extra arguments go to pyrt build
# (--force, --entrypoint FILE).
#
# Users: the container starts as root, so it can write into a host folder owned by root.
# pip runs as root (as in the seed), but the entry point is imported -- user code runs --
# as the unprivileged user pyrt (PYRT_USER overrides). When the folder belongs to another
# owner than root, runtime-env/ and __pycache__/ are handed to that owner afterwards, so
# the host user can delete them. Started as non-root (docker run --user), it builds as
# that user, which must be able to write the folder.
#
# pip's own settings pass through (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS,
# PIP_NO_INDEX, a mounted pip.conf). Requirements without a wheel for this platform build
# from source and need a C compiler: use the image's `toolchain` target for this step
# (docs/container.md, "Compiled dependencies").
set -eu

code_dir=${PYRT_CODE_DIR:-/usr/code}
: "${PIP_DISABLE_PIP_VERSION_CHECK:=1}"
: "${PIP_ROOT_USER_ACTION:=ignore}"
export PIP_DISABLE_PIP_VERSION_CHECK PIP_ROOT_USER_ACTION

if [ "$(id -u)" -eq 0 ]; then
    set -- --user "${PYRT_USER:-pyrt}" "$@"
fi

rc=0
pyrt build "$code_dir" "$@" || rc=$?
if [ "$rc" -ne 0 ]; then
    if [ -f "$code_dir/requirements.txt" ] && ! command -v cc >/dev/null 2>&1; then
        echo "build.sh: if pip failed building a package from source, this image has no C" \
             "compiler: run this step with the toolchain image (docker build --target" \
             "toolchain -t python-runtime:3.10-toolchain .)" >&2
    fi
    exit "$rc"
fi

if [ "$(id -u)" -eq 0 ]; then
    owner=$(stat -c %u:%g "$code_dir")
    if [ "$owner" != "0:0" ]; then
        find "$code_dir" \( -path "$code_dir/runtime-env" -o -name __pycache__ \) -prune \
            -exec chown -R -h "$owner" {} +
    fi
fi
echo "build.sh: $code_dir is built: runtime-env/ ready; next: tar -czvf ./code.tar.gz ./"
