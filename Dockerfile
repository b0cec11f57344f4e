# pyrt as the seed's container image:
#
#   docker build -t python-runtime:3.10 .
#   docker run --rm -v $(pwd):/usr/code/ -e ENTRYPOINT_NAME=index.py python-runtime:3.10 /usr/local/src/build.sh
#   tar -czvf ./code.tar.gz ./
#   docker run -p 3000:3000 -e INTERNAL_RUNTIME_KEY=... --rm -v $(pwd)/code.tar.gz:/tmp/code.tar.gz python-runtime:3.10 /usr/local/src/launch.sh
#
# and as the open-runtimes executor's Python image (docs/container.md): v5 through
# /usr/local/server/helpers/{build,start,server}.sh (the working directory is
# /usr/local/server, as in open-runtimes' images), v2 through /usr/local/src/build.sh and
# the default command /usr/local/src/start.sh.
#
# BASE_IMAGE is any Debian 12 image with a CPython 3.8+ that has venv and pip: the
# official python:3.10-slim-bookworm (Python under /usr/local, headers and python3-config
# included) or a plain Debian 12 root with python3, python3-dev, python3-venv and
# python3-pip (what `make test-container` builds, since no registry is reachable there).
# Python is found through PATH and python3-config/sysconfig, never by a fixed path.
#
# Targets: the default (last) stage is the runtime image. `--target toolchain` adds a C
# compiler for requirements that only build from source (docs/container.md).
ARG BASE_IMAGE=python:3.10-slim-bookworm

# ---------------------------------------------------------------- build: compile pyrt
FROM ${BASE_IMAGE} AS build
ARG DEBIAN_FRONTEND=noninteractive
# The C toolchain and the libraries' headers. Python's own headers come from the base
# when it has them (the official image: /usr/local/include/python3.X); only a Debian
# Python without them gets python3-dev. Installing Debian's python3-dev next to the
# official image's Python would bring a second interpreter (3.11) and its headers.
COPY docker/install-build-deps.sh /usr/local/src/
RUN sh /usr/local/src/install-build-deps.sh gcc libc6-dev make pkg-config binutils \
    libuv1-dev libhttp-parser-dev libyajl-dev libarchive-dev

WORKDIR /src
COPY Makefile ./
COPY src/ src/
COPY python/ python/
# libuv, yajl, http-parser and libarchive are linked statically, so the runtime stage
# needs no apt-get at all. --gc-sections drops the archive formats pyrt never uses
# (libarchive's xar writer is what needs libxml2, which pulls ICU: ~40 MiB on Debian 12);
# libxml2 is left off the link line: should a section pyrt keeps still need it, the link
# fails (undefined symbols) instead of pulling it in. --as-needed keeps only the shared
# libraries still referenced (zlib, liblzma, libbz2, libzstd, liblz4, libacl, libnettle:
# all part of any Debian 12 base), named by the sonames libarchive.so was linked against.
RUN set -eu; \
    py=$(command -v python3); \
    "$py-config" --embed --ldflags >/dev/null; \
    libs=""; \
    for lib in libarchive.a libuv_a.a libyajl_s.a libhttp_parser.a libarchive.so; do \
        path=$(gcc -print-file-name="$lib"); \
        [ -f "$path" ] || { echo "$lib not found" >&2; exit 1; }; \
        case "$lib" in *.a) libs="$libs $path" ;; *) so=$(readlink -f "$path") ;; esac; \
    done; \
    needed=$(objdump -p "$so" | awk '$1 == "NEEDED" && $2 !~ /^(libc|libxml2)[.]so/ { printf " -l:%s", $2 }'); \
    libs="$libs -Wl,--gc-sections -Wl,--as-needed $needed -lpthread -ldl -lrt"; \
    make -j"$(nproc)" PYTHON="$py" LIB_LDFLAGS="$libs"; \
    strip --strip-debug build/pyrt; \
    ldd build/pyrt; \
    if ldd build/pyrt | grep -E 'libuv|libyajl|libhttp_parser|libarchive|libxml2|libicu'; then \
        echo "pyrt still links the libraries above dynamically" >&2; exit 1; \
    fi; \
    build/pyrt --version; \
    install -D -m 0755 build/pyrt /out/usr/local/bin/pyrt

# ---------------------------------------------------------------- common: user, metadata
# What the runtime and the toolchain images share, before pyrt itself, so that a change
# to pyrt does not invalidate the toolchain's compiler layer.
FROM ${BASE_IMAGE} AS common
# The non-root user that runs the function's code (launch.sh passes --user pyrt; build.sh
# checks the entry point as it), and owns /usr/code.
RUN set -eu; \
    groupadd --gid 10001 pyrt; \
    useradd --uid 10001 --gid pyrt --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin pyrt; \
    install -d -o pyrt -g pyrt -m 0755 /usr/code; \
    python3 -c 'import ensurepip, venv' || { \
        echo "the base image's python3 has no venv/ensurepip (python3-venv)" >&2; exit 1; }; \
    for tool in bash script awk; do \
        command -v "$tool" >/dev/null || { echo "the base image has no $tool" >&2; exit 1; }; \
    done; \
    install -d -m 0755 /usr/local/server/helpers /usr/local/server/src; \
    ln -s /tmp/pyrt/function /usr/local/server/src/function
# bash, script (util-linux's, which the executor's v5 build runs under) and awk come with
# every Debian base. src/function links into /tmp: the v5 start extracts the function
# there, so the image also runs read-only with a writable /tmp.
WORKDIR /usr/local/server
EXPOSE 3000
# No curl in a slim image: the base's own python3 asks the health path (no key needed, no
# user code runs): /__opr/health under the v5 contract (chosen as pyrt chooses it),
# /__health otherwise. -I: no PYTHON* variables, no user site. Honours PORT like pyrt.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python3", "-I", "-c", "import os, urllib.request; e = os.environ; v5 = e.get('PYRT_CONTRACT') == 'v5' or ('OPEN_RUNTIMES_SECRET' in e and 'INTERNAL_RUNTIME_KEY' not in e and not e.get('PYRT_CONTRACT')); urllib.request.urlopen('http://127.0.0.1:%s/%s' % (e.get('PORT') or '3000', '__opr/health' if v5 else '__health'), timeout=4)"]
# The container starts as root so the build scripts can write into a bind-mounted host
# folder owned by root; every start drops privileges for user code (pyrt --user pyrt).
# The default command is the open-runtimes executor's v2 start; the seed names its
# commands (launch.sh), and v5 runs helpers/start.sh.
CMD ["/usr/local/src/start.sh"]

# ---------------------------------------------------------------- toolchain (optional)
# `docker build --target toolchain -t python-runtime:3.10-toolchain .`: the runtime plus a
# C compiler and Python's headers, for requirements that have no wheel for this platform
# and build from source. Run build.sh with this image, launch with the runtime one (the
# same base, so the same interpreter at the same path). Libraries a package links against
# (libpq-dev, ...) are the user's to add in a derived image.
FROM common AS toolchain
ARG DEBIAN_FRONTEND=noninteractive
COPY docker/install-build-deps.sh /usr/local/src/
RUN sh /usr/local/src/install-build-deps.sh gcc g++ libc6-dev make pkg-config
COPY --from=build /out/ /
COPY docker/build.sh docker/launch.sh docker/start.sh /usr/local/src/
COPY docker/helpers/ /usr/local/server/helpers/
RUN chmod 0755 /usr/local/src/*.sh /usr/local/server/helpers/*.sh && /usr/local/bin/pyrt --version

# ---------------------------------------------------------------- runtime (the default)
FROM common AS runtime
COPY --from=build /out/ /
COPY docker/build.sh docker/launch.sh docker/start.sh /usr/local/src/
COPY docker/helpers/ /usr/local/server/helpers/
RUN set -eu; \
    chmod 0755 /usr/local/src/*.sh /usr/local/server/helpers/*.sh; \
    if ldd /usr/local/bin/pyrt | grep 'not found'; then \
        echo "the base image lacks the shared libraries above" >&2; exit 1; \
    fi; \
    /usr/local/bin/pyrt --version
