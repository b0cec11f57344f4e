#!/bin/sh
# docker/install-build-deps.sh PKG... -- used by the Dockerfile's build and toolchain
# stages: apt-installs PKG... plus, only when the base image's python3 has no headers
# (a plain Debian root), Debian's python3-dev. The official python images carry their
# own headers and python3-config under /usr/local; Debian's python3-dev next to them
# would bring a second interpreter.
set -eu
pkgs="$*"
py=$(command -v python3)
inc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
if [ ! -f "$inc/Python.h" ] || ! command -v "$py-config" >/dev/null; then
    case "$py" in
        /usr/bin/*) pkgs="$pkgs python3-dev" ;;
        *) echo "no Python.h under $inc or no $py-config in the base image" >&2; exit 1 ;;
    esac
fi
apt-get update -qq
# shellcheck disable=SC2086 # a list of package names
apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
rm -rf /var/lib/apt/lists/*
