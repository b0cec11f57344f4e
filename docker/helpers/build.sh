#!/bin/bash
# helpers/build.sh "<install command>" -- the open-runtimes v5 build, run by the executor
# inside a container of this image (working directory /usr/local/server):
#
#   tar -zxf /tmp/code.tar.gz -C /mnt/code && helpers/build.sh 'pip install --no-cache-dir -r requirements.txt'
#
# Copies the sources from /mnt/code (OPEN_RUNTIMES_BUILD_INPUT_DIR) to a private build
# folder, runs `pyrt build` there with the install command (in the folder, runtime-env
# active), which also byte-compiles the code and checks the entry point
# (OPEN_RUNTIMES_ENTRYPOINT, else main.py, else index.py), records that entry point in
# .open-runtimes, and writes /mnt/code/code.tar.gz (OPEN_RUNTIMES_BUILD_OUTPUT_DIR):
# gzip, or a plain tar under the same name with OPEN_RUNTIMES_BUILD_COMPRESSION=none.
# OPEN_RUNTIMES_OUTPUT_DIRECTORY packs a subfolder of the build instead of all of it.
#
# Started as root (the executor's way), the install command and the entry point's import
# -- all code of the user's -- run as the unprivileged user pyrt (PYRT_USER overrides).
set -euo pipefail
shopt -s nullglob dotglob

say() { printf '[pyrt] %s\n' "$*"; }
fail() { printf '[pyrt] %s\n' "$*" >&2; exit 1; }

[ $# -ge 1 ] && [ -n "$1" ] ||
    fail 'usage: helpers/build.sh "<install command>", e.g. "pip install --no-cache-dir -r requirements.txt"'
input=${OPEN_RUNTIMES_BUILD_INPUT_DIR:-/mnt/code}
output=${OPEN_RUNTIMES_BUILD_OUTPUT_DIR:-/mnt/code}

sources=()
for path in "$input"/*; do
    case "${path##*/}" in code.tar | code.tar.gz) continue ;; esac # an earlier build's output
    sources+=("$path")
done
[ ${#sources[@]} -gt 0 ] || fail "No source code found in $input. Ensure your source isn't empty."

say "Environment preparation started."
build=$(mktemp -d /tmp/pyrt-build.XXXXXX)
trap 'rm -rf "$build"' EXIT
cp -a "${sources[@]}" "$build"/
as_user=()
if [ "$(id -u)" -eq 0 ]; then
    user=${PYRT_USER:-pyrt}
    chown -R "$user:$(id -g "$user")" "$build"
    as_user=(--user "$user")
fi
entry=()
[ -z "${OPEN_RUNTIMES_ENTRYPOINT:-}" ] || entry=(--entrypoint "$OPEN_RUNTIMES_ENTRYPOINT")
say "Environment preparation finished."

say "Build command execution started."
pyrt build "$build" --install-command "$1" "${as_user[@]}" "${entry[@]}"
say "Build command execution finished."

say "Build packaging started."
packed=$build
[ -z "${OPEN_RUNTIMES_OUTPUT_DIRECTORY:-}" ] || packed=$build/$OPEN_RUNTIMES_OUTPUT_DIRECTORY
[ -d "$packed" ] && [ -n "$(ls -A "$packed")" ] ||
    fail "No build output found in ${OPEN_RUNTIMES_OUTPUT_DIRECTORY:-the build}. Ensure your output directory isn't empty."
# What start needs: helpers/start.sh reads this line (and nothing else) back.
printf 'OPEN_RUNTIMES_ENTRYPOINT=%s\n' "${OPEN_RUNTIMES_ENTRYPOINT:-}" > "$packed/.open-runtimes"
plain=()
case "${OPEN_RUNTIMES_BUILD_COMPRESSION:-gzip}" in
    none) plain=(--no-gzip) ;;
    gzip | auto) ;;
    *) say "OPEN_RUNTIMES_BUILD_COMPRESSION=$OPEN_RUNTIMES_BUILD_COMPRESSION is not supported here: gzip" ;;
esac
mkdir -p "$output"
pyrt pack "$packed" -o "$output/code.tar.gz" "${plain[@]}"
say "Build packaging finished."
say "Build finished."
