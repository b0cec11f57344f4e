#!/bin/sh
# bench/bench.py's "openruntimes-v5" server: open-runtimes' own v5 Python server, run as
# their image runs it (runtimes/python/versions/latest/hooks/server.sh: gunicorn with their
# aiohttp worker class, --preload, --timeout 0), on Debian's gunicorn and aiohttp.
# Their code is NOT part of this repository: SRC is a folder the user extracted from a
# clone of open-runtimes/open-runtimes (bench/README.md); this script only mounts it.
#
#   unshare --mount --propagation private -- /bin/sh bench/apps/openruntimes_v5.sh \
#       SRC FUNCTION LOGS SCRATCH PORT WORKERS
#
# Their server hardcodes /usr/local/server/src/function/ (the function), /mnt/logs and
# /mnt/telemetry. In the private mount namespace that unshare made, and only there, this
# script mounts a tmpfs on SCRATCH (an empty folder) for the upper layers of overlays on
# /usr/local and /mnt, makes /usr/local/server/src an overlay whose lower layer is SRC
# (read-only: their __pycache__ lands in the tmpfs), binds FUNCTION (the bench's function
# folder) at .../src/function and LOGS at /mnt/logs, and execs gunicorn on 127.0.0.1:PORT,
# so the server's pid is this process's. Nothing is created outside SCRATCH and LOGS; the
# mounts go away with the namespace when the server exits.
set -eu

if [ "$#" -ne 6 ]; then
	echo "usage: $0 SRC FUNCTION LOGS SCRATCH PORT WORKERS (inside unshare -m)" >&2
	exit 2
fi
src=$1 function=$2 logs=$3 scratch=$4 port=$5 workers=$6

# Refuse to touch the machine's own mounts: this must run in a mount namespace of its own.
if [ "$(readlink /proc/self/ns/mnt)" = "$(readlink "/proc/$PPID/ns/mnt")" ]; then
	echo "$0: not in a private mount namespace (run it under unshare --mount)" >&2
	exit 2
fi
for f in server.py custom_worker.py function_types.py logger.py config.py; do
	if [ ! -f "$src/$f" ]; then
		echo "$0: $src/$f missing: SRC must be open-runtimes'" \
			"runtimes/python/versions/latest/src" >&2
		exit 2
	fi
done

mount -t tmpfs -o mode=0700,size=64m bench-openruntimes "$scratch"
mkdir "$scratch/local" "$scratch/local.work" "$scratch/mnt" "$scratch/mnt.work" \
	"$scratch/src" "$scratch/src.work"
mount -t overlay overlay \
	-o "lowerdir=/usr/local,upperdir=$scratch/local,workdir=$scratch/local.work" /usr/local
mount -t overlay overlay -o "lowerdir=/mnt,upperdir=$scratch/mnt,workdir=$scratch/mnt.work" /mnt
mkdir -p /usr/local/server/src /mnt/logs /mnt/telemetry
mount -t overlay overlay \
	-o "lowerdir=$src,upperdir=$scratch/src,workdir=$scratch/src.work" /usr/local/server/src
mkdir /usr/local/server/src/function
mount --bind "$function" /usr/local/server/src/function
mount --bind "$logs" /mnt/logs

cd /usr/local/server
echo "openruntimes_v5.sh: exec /usr/bin/gunicorn -b 127.0.0.1:$port --log-level=warning" \
	"-w $workers --chdir /usr/local/server/src" \
	"--worker-class custom_worker.CustomGunicornWebWorker --preload --timeout 0 server:app" >&2
exec /usr/bin/gunicorn -b "127.0.0.1:$port" --log-level=warning -w "$workers" \
	--chdir /usr/local/server/src --worker-class custom_worker.CustomGunicornWebWorker \
	--preload --timeout 0 server:app
