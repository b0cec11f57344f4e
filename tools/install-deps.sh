#!/bin/sh
# install-deps.sh PACKAGE... -- installs the Debian packages that are missing.
# Used by `make run`, `make test` and the other targets, so that on a fresh Debian 12
# machine as root those commands need no other set-up step. Does nothing (and never
# calls apt-get) when everything is there.
set -eu
missing=""
for pkg in "$@"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    case "$status" in
        *"ok installed"*) ;;
        *) missing="$missing $pkg" ;;
    esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "pyrt: missing Debian packages:$missing" >&2
    echo "pyrt: install them with: sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "pyrt: installing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
