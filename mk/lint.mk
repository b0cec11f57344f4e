# make lint: static analysis of src/ with cppcheck and clang-tidy (both Debian's), included
# by the Makefile (or `make -f mk/lint.mk lint`). Fails on any finding.
#
#   cppcheck     warning, style, portability and performance checks; what is accepted on
#                purpose is in tests/lint/cppcheck-suppressions.txt, each with its reason
#   clang-tidy   the checks in .clang-tidy (committed at the top), every warning an error
#
# clang-tidy takes about 2 minutes for src/ on one core: `make -j2 lint` halves that.
#
#   make format        formats the C sources in place (.clang-format at the top)
#   make format-check  fails, naming the files, if any is not formatted (CI runs it)

LINT_PKGS = cppcheck clang-tidy clang-format pkg-config python3-dev libuv1-dev libhttp-parser-dev \
            libyajl-dev libarchive-dev
LINT_PYTHON ?= /usr/bin/python3
LINT_SRC = $(sort $(wildcard src/*.c src/*/*.c))
LINT_DEFS = -std=c11 -D_GNU_SOURCE -Isrc -DPYRT_PYTHON='"python3"' -DPYRT_PYTHON_VERSION='"3"'
LINT_INC = $(shell $(LINT_PYTHON)-config --includes 2>/dev/null) \
           $(shell pkg-config --cflags libuv yajl libarchive 2>/dev/null)

.PHONY: lint lint-deps lint-cppcheck lint-tidy format format-check

FORMAT_SRC = $(sort $(wildcard src/*.c src/*/*.c src/*/*.h tests/unit/*.c tests/unit/*.h \
                                tests/fuzz/*.c tests/fuzz/*.h bench/ceiling.c))

format: | lint-deps
	clang-format -i $(FORMAT_SRC)

format-check: | lint-deps
	@clang-format --dry-run --Werror $(FORMAT_SRC) 2>/dev/null || { \
	  echo "not formatted (make format fixes them):"; \
	  for f in $(FORMAT_SRC); do \
	    clang-format --dry-run --Werror $$f >/dev/null 2>&1 || echo "  $$f"; done; exit 1; }

lint-deps:
	@sh tools/install-deps.sh $(LINT_PKGS)

lint: lint-cppcheck lint-tidy

lint-cppcheck: | lint-deps
	cppcheck -q --std=c11 --enable=warning,style,portability,performance \
	  --library=posix,gnu,python --inline-suppr \
	  --suppressions-list=tests/lint/cppcheck-suppressions.txt --error-exitcode=1 \
	  --template='{file}:{line}: {severity} [{id}] {message}' \
	  -Isrc -D_GNU_SOURCE -DPYRT_PYTHON='"python3"' -DPYRT_PYTHON_VERSION='"3"' src/

# One stamp per file, so `make -j2 lint` shares the work and a second run checks only
# what changed (any header change checks everything again).
LINT_STAMPS = $(LINT_SRC:src/%.c=build/lint/%.tidy)

lint-tidy: $(LINT_STAMPS)

build/lint/%.tidy: src/%.c .clang-tidy $(wildcard src/*/*.h) | lint-deps
	@mkdir -p $(dir $@)
	@printf '    %-5s %s\n' TIDY $<
	@clang-tidy --quiet $< -- $(LINT_DEFS) $(LINT_INC) 2>/dev/null
	@touch $@
