# pyrt -- a Python function runtime in C.
#
#   make            build build/pyrt
#   make run        install what is missing, build, serve examples/hello on :3000
#   make test       install what tests need, build, run the unit and end-to-end tests
#   make unit       the C unit tests (cmocka), each binary under a timeout
#   make e2e        the end-to-end tests (pytest) against $(BUILD)/pyrt
#   make test-asan  the end-to-end tests against an ASan/UBSan build
#   make noopt      build/noopt/pyrt: the same build at -O0, in a folder of its own
#   make soak       mixed good/timeout/crash/bad traffic for SOAK_SECONDS (180)
#   make install    install build/pyrt into $(PREFIX)/bin
#   make clean      remove build/
#   make help       this list, and the targets of mk/*.mk
#
# PYTHON is the interpreter pyrt embeds and builds runtime-envs with (Debian's, not a
# pyenv one that may come first on PATH). SANITIZER=address builds with ASan+UBSan.

PYTHON ?= /usr/bin/python3
PREFIX ?= /usr/local
SANITIZER ?=
BUILD ?= build
V ?=

BUILD_PKGS = gcc make pkg-config libuv1-dev libhttp-parser-dev libyajl-dev libarchive-dev \
             python3-dev python3-venv
TEST_PKGS = python3-pytest libcmocka-dev procps curl tar python3-setuptools python3-wheel wrk iproute2 prometheus \
            haproxy \
            mypy

# Evaluated once, on first use, so that a missing python3-dev before `make deps` is not
# an error for targets that do not compile.
cache = $(eval $1 := $$(shell $2))$($1)
PY_CFLAGS = $(call cache,PY_CFLAGS,$(PYTHON)-config --includes)
PY_LDFLAGS = $(call cache,PY_LDFLAGS,$(PYTHON)-config --embed --ldflags)
PY_EXE = $(call cache,PY_EXE,$(PYTHON) -c 'import os; import sys; print(os.path.realpath(sys.executable))')
PY_VERSION = $(call cache,PY_VERSION,$(PYTHON) -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
LIB_CFLAGS = $(call cache,LIB_CFLAGS,pkg-config --cflags libuv yajl libarchive)
LIB_LDFLAGS = $(call cache,LIB_LDFLAGS,pkg-config --libs libuv yajl libarchive) -lhttp_parser

STD = -std=c11 -D_GNU_SOURCE
WARN = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-missing-field-initializers
OPT ?= -O2
DEBUG = -g
ifeq ($(SANITIZER),address)
  SAN_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  BUILD = build/asan
  OPT = -O1
endif

FINAL_CFLAGS = $(STD) $(WARN) $(OPT) $(DEBUG) $(SAN_FLAGS) $(CFLAGS) -Isrc $(LIB_CFLAGS) \
               $(PY_CFLAGS) -DPYRT_PYTHON='"$(PY_EXE)"' -DPYRT_PYTHON_VERSION='"$(PY_VERSION)"'
FINAL_LDFLAGS = $(SAN_FLAGS) $(LDFLAGS)
FINAL_LIBS = $(LIB_LDFLAGS) $(PY_LDFLAGS) -lm

ifeq ($(V),)
  QUIET_CC = @printf '    %-5s %s\n' CC $@;
  QUIET_LINK = @printf '    %-5s %s\n' LINK $@;
endif

CORE_SRC = src/common/buf.c src/common/xalloc.c src/common/log.c src/common/json.c src/common/num.c \
           src/common/sysinfo.c src/common/contract.c src/common/rmtree.c src/common/writev.c src/proto/proto.c src/proto/zygote.c \
           src/cli/opts.c
POOL_SRC = src/master/pool.c src/master/spawn.c src/master/channel.c src/master/tasks.c src/master/result.c \
           src/master/output.c src/master/lines.c src/master/dispatch.c src/master/deadline.c \
           src/master/backoff.c src/master/shutdown.c
MASTER_SRC = src/master/master.c src/master/http.c src/master/conn.c src/master/listener.c src/master/http_request.c src/master/http_answer.c src/master/body.c $(POOL_SRC) \
             src/master/queue.c src/master/job.c src/master/reqline.c src/master/proctree.c src/master/uidslot.c src/master/reqid.c src/master/secret.c \
             src/master/run.c src/master/admit.c src/master/execlog.c src/master/metrics.c src/master/tmpdirs.c
WORKER_SRC = src/worker/zygote.c src/worker/worker.c src/worker/channel.c src/worker/tasks.c src/worker/pyembed.c src/worker/sandbox.c \
             src/worker/tmpdir.c src/worker/loopwait.c
BUILD_SRC = src/build/build.c src/tar/pack.c src/tar/extract.c src/common/proc.c
CLI_SRC = src/main.c src/cli/cmd_serve.c src/cli/cmd_build.c src/cli/cmd_pack.c src/cli/cmd_launch.c \
          src/cli/cmd_run.c src/cli/cmd_call.c src/cli/cmd_zygote.c src/cli/exec_request.c \
          src/cli/contract.c
SRC = $(CORE_SRC) $(MASTER_SRC) $(WORKER_SRC) $(BUILD_SRC) $(CLI_SRC)
OBJ = $(SRC:src/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/worker/embedded.o
DEPS = $(OBJ:.o=.d)
EMBEDDED_PY = python/runtime/pyrt_runtime.py python/runtime/pyrt_validate.py \
              python/function_types/function_types/__init__.py

UNIT_TESTS = test_proto test_opts test_secret test_reqid test_body test_json test_queue test_reqline \
             test_gate test_result test_lines test_backoff test_metrics test_tar test_admit test_rmtree
UNIT_TIMEOUT ?= 60
UNIT_BIN = $(UNIT_TESTS:%=$(BUILD)/tests/%)

.PHONY: all run test unit e2e test-asan soak install clean deps deps-test noopt help

all: $(BUILD)/pyrt

$(BUILD)/pyrt: $(OBJ)
	$(QUIET_LINK)$(CC) $(FINAL_LDFLAGS) -o $@ $(OBJ) $(FINAL_LIBS)

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(QUIET_CC)$(CC) $(FINAL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/worker/embedded.o: src/worker/embedded.S $(EMBEDDED_PY)
	@mkdir -p $(dir $@)
	$(QUIET_CC)$(CC) -c $< -o $@

-include $(DEPS)

# ---- unit tests (cmocka): each links only the pieces it tests, no Python ----
$(BUILD)/tests/test_proto: tests/unit/test_proto.c $(BUILD)/obj/proto/proto.o $(BUILD)/obj/common/buf.o $(BUILD)/obj/common/xalloc.o
$(BUILD)/tests/test_opts: tests/unit/test_opts.c $(BUILD)/obj/cli/opts.o $(BUILD)/obj/common/num.o
$(BUILD)/tests/test_secret: tests/unit/test_secret.c $(BUILD)/obj/master/secret.o $(BUILD)/obj/common/xalloc.o
$(BUILD)/tests/test_reqid: tests/unit/test_reqid.c $(BUILD)/obj/master/reqid.o
$(BUILD)/tests/test_body: tests/unit/test_body.c $(BUILD)/obj/master/body.o $(BUILD)/obj/common/xalloc.o
$(BUILD)/tests/test_json: tests/unit/test_json.c $(BUILD)/obj/common/json.o $(BUILD)/obj/common/buf.o $(BUILD)/obj/common/xalloc.o
$(BUILD)/tests/test_queue: tests/unit/test_queue.c $(BUILD)/obj/master/queue.o
$(BUILD)/tests/test_reqline: tests/unit/test_reqline.c $(BUILD)/obj/master/reqline.o
$(BUILD)/tests/test_gate: tests/unit/test_gate.c
$(BUILD)/tests/test_result: tests/unit/test_result.c $(BUILD)/obj/master/result.o $(BUILD)/obj/proto/proto.o $(BUILD)/obj/common/buf.o $(BUILD)/obj/common/xalloc.o
$(BUILD)/tests/test_lines: tests/unit/test_lines.c $(BUILD)/obj/master/lines.o $(BUILD)/obj/common/buf.o $(BUILD)/obj/common/xalloc.o
$(BUILD)/tests/test_backoff: tests/unit/test_backoff.c $(BUILD)/obj/master/backoff.o
$(BUILD)/tests/test_tar: tests/unit/test_tar.c $(BUILD)/obj/tar/pack.o $(BUILD)/obj/tar/extract.o $(BUILD)/obj/common/buf.o $(BUILD)/obj/common/xalloc.o
$(BUILD)/tests/test_metrics: tests/unit/test_metrics.c $(BUILD)/obj/master/metrics.o $(BUILD)/obj/common/buf.o $(BUILD)/obj/common/xalloc.o
$(BUILD)/tests/test_admit: tests/unit/test_admit.c $(BUILD)/obj/master/admit.o $(BUILD)/obj/master/body.o $(BUILD)/obj/master/job.o $(BUILD)/obj/master/execlog.o $(BUILD)/obj/common/writev.o $(BUILD)/obj/master/reqid.o $(BUILD)/obj/common/log.o $(BUILD)/obj/common/json.o $(BUILD)/obj/common/buf.o $(BUILD)/obj/common/xalloc.o
$(BUILD)/tests/test_rmtree: tests/unit/test_rmtree.c $(BUILD)/obj/common/rmtree.o
$(UNIT_BIN):
	@mkdir -p $(dir $@)
	$(QUIET_LINK)$(CC) $(FINAL_CFLAGS) $(FINAL_LDFLAGS) -o $@ $^ $(LIB_LDFLAGS) -lcmocka -lm

# Each binary under a timeout: a test that hangs fails, and the others still run.
unit: $(UNIT_BIN)
	@failed=0; for t in $(UNIT_BIN); do echo "== $$t"; \
	  timeout $(UNIT_TIMEOUT) $$t || { rc=$$?; failed=1; \
	    if [ $$rc -eq 124 ]; then echo "$$t: timed out after $(UNIT_TIMEOUT) s"; fi; }; \
	done; exit $$failed

e2e: $(BUILD)/pyrt
	PYRT_BIN=$(abspath $(BUILD)/pyrt) $(PYTHON) -m pytest tests/e2e python/function_types/tests -q -p no:cacheprovider $(PYTEST_ARGS)

deps:
	@sh tools/install-deps.sh $(BUILD_PKGS)

deps-test: deps
	@sh tools/install-deps.sh $(TEST_PKGS)

test: deps-test
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory e2e
	@$(MAKE) --no-print-directory test-manifests

test-asan: deps-test
	@$(MAKE) --no-print-directory SANITIZER=address all
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  PYRT_SANITIZER=1 PYRT_BIN=$(abspath build/asan/pyrt) \
	  $(PYTHON) -m pytest tests/e2e -q -p no:cacheprovider $(PYTEST_ARGS)

SOAK_SECONDS ?= 180
soak: deps
	@$(MAKE) --no-print-directory all
	$(PYTHON) tests/soak/soak.py --seconds $(SOAK_SECONDS) --bin $(abspath $(BUILD)/pyrt)

run: deps
	@$(MAKE) --no-print-directory all
	@if [ -z "$$INTERNAL_RUNTIME_KEY" ]; then \
	  key=$$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n'); \
	  echo "pyrt: INTERNAL_RUNTIME_KEY not set; using $$key"; \
	else key=$$INTERNAL_RUNTIME_KEY; fi; \
	echo "pyrt: try: curl -s -H \"x-internal-challenge: $$key\" -d '{}' http://127.0.0.1:$${PORT:-3000}/"; \
	INTERNAL_RUNTIME_KEY=$$key exec $(BUILD)/pyrt serve --code-dir examples/hello

install: $(BUILD)/pyrt
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BUILD)/pyrt $(DESTDIR)$(PREFIX)/bin/pyrt

# Suites that live in their own files: the benchmark (bench, bench-smoke) and the
# container image test (test-container).
-include mk/*.mk

# -O0 in a folder of its own: the flags are not among the objects' prerequisites, so in
# build/ an -O0 build would mix with the -O2 objects already there (or do nothing).
noopt:
	@$(MAKE) --no-print-directory OPT=-O0 BUILD=build/noopt all

# The "#   make TARGET  what it does" lines at the top of this file and of each mk/*.mk
# (and their "# make TARGET: ..." first lines): the list is written once, by the targets.
help:
	@for f in $(filter Makefile mk/%.mk,$(MAKEFILE_LIST)); do \
	  sed -n '/^#/!q; s/^#   \(make .*\)/\1/p; s/^#   \(   .*\)/\1/p; s/^# \(make [a-z-]*\): /\1: /p' $$f; \
	done

clean:
	rm -rf build
