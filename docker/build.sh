#!/bin/sh
# /usr/local/src/build.sh -- the seed's build step, in the image:
#
#   docker run --rm -v $(pwd):/usr/code/ -e ENTRYPOINT_NAME=index.py python-runtime:3.10 /usr/local/src/build.sh
#
# Prepares the bind-mounted folder in place with `pyrt build /usr/code`: runtime-env/ (a
# venv of the image's Python with requirements.txt installed), bytecode, a checked entry
# point (ENTRYPOINT_NAME, else INTERNAL_RUNTIME_ENTRYPOINT, else main.py, else index.py).
# Extra arguments go to pyrt build (--force, --entrypoint FILE).
#
# The open-runtimes executor's v2 build runs this script too (`tar -zxf /tmp/code.tar.gz
# -C /usr/code && cd /usr/local/src/ && ./build.sh`, with INTERNAL_RUNTIME_ENTRYPOINT
# set): then it also writes /usr/code/code.tar.gz, the archive that generation expects.
#
# Users: the container starts as root, so it can write into a host folder of any owner
# and mode (a `mktemp -d` folder is 0700 root). No code of the user's runs as root: pip
# (packages' build scripts) and the entry point's import run as the folder's owner, or,
# for a folder of root's, as the unprivileged user pyrt (PYRT_USER overrides), which pyrt
# lets read the folder even when its mode would not. runtime-env/ and __pycache__/ are
# then handed to the folder's owner. Started as non-root (docker run --user), it builds
# as that user, which must be able to write the folder.
#
# pip's own settings pass through (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS,
# PIP_NO_INDEX, a mounted pip.conf). Requirements without a wheel for this platform build
# from source and need a C compiler: pyrt says so when that is why pip failed; use the
# image's `toolchain` target for this step (docs/container.md, "Compiled dependencies").
set -eu

code_dir=${PYRT_CODE_DIR:-/usr/code}
: "${PIP_DISABLE_PIP_VERSION_CHECK:=1}"
: "${PIP_ROOT_USER_ACTION:=ignore}"
export PIP_DISABLE_PIP_VERSION_CHECK PIP_ROOT_USER_ACTION

[ -d "$code_dir" ] || { echo "build.sh: $code_dir is not a folder (mount the function there)" >&2; exit 1; }
owner=$(stat -c %u "$code_dir")
if [ "$(id -u)" -eq 0 ]; then
    if [ -n "${PYRT_USER:-}" ]; then
        user=$PYRT_USER
    elif [ "$owner" != 0 ]; then
        user=$owner
    else
        user=pyrt
    fi
    set -- --user "$user" "$@"
fi

pyrt build "$code_dir" "$@"

if [ "$(id -u)" -eq 0 ]; then
    find "$code_dir" \( -path "$code_dir/runtime-env" -o -name __pycache__ \) -prune \
        -exec chown -R -h "$(stat -c %u:%g "$code_dir")" {} +
fi
if [ -n "${INTERNAL_RUNTIME_ENTRYPOINT:-}" ]; then
    pyrt pack "$code_dir" -o "$code_dir/code.tar.gz"
    echo "build.sh: $code_dir is built and packed into $code_dir/code.tar.gz"
else
    echo "build.sh: $code_dir is built: runtime-env/ ready; next: tar -czvf ./code.tar.gz ./"
fi
