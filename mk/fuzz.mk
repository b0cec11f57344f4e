# make fuzz: libFuzzer targets for every place pyrt's C code parses bytes from outside
# (tests/fuzz/README.md), included by the Makefile.
#
#   make fuzz             installs clang (Debian's), builds each target with
#                         -fsanitize=fuzzer,address,undefined into build/fuzz/, runs each
#                         for FUZZ_SECONDS (60) on a scratch copy of its committed corpus
#                         (tests/fuzz/corpus/NAME/); fails if one crashes, leaks or times out
#   make fuzz-build       the targets only
#
# `make fuzz FUZZ_TARGETS='body json'` runs some of them; FUZZ_ARGS passes libFuzzer options.
# A target links the few sources it fuzzes, compiled here with its own flags (never the
# main build's objects: those are not instrumented). The file also works on its own:
# `make -f mk/fuzz.mk fuzz`.

FUZZ_PKGS = clang-14 libclang-rt-14-dev pkg-config libhttp-parser-dev libyajl-dev \
            libarchive-dev libuv1-dev
FUZZ_CC ?= clang-14
FUZZ_SECONDS ?= 60
FUZZ_TIMEOUT ?= 10
FUZZ_ARGS ?=
FUZZ_DIR = build/fuzz
FUZZ_TARGETS ?= reqline http body proto result lines tar_link tar_extract opts json ids

FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers \
              -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
              -fno-sanitize-recover=all -Isrc -Itests/fuzz

# What each target links: the file it fuzzes and what that file needs.
FUZZ_SRC_reqline = src/master/reqline.c
FUZZ_SRC_http = src/master/reqline.c src/master/body.c src/common/buf.c src/common/xalloc.c
FUZZ_LIBS_http = -lhttp_parser -lyajl
FUZZ_SRC_body = src/master/body.c src/common/xalloc.c
FUZZ_LIBS_body = -lyajl
FUZZ_SRC_proto = src/proto/proto.c src/master/result.c src/common/buf.c src/common/xalloc.c
FUZZ_SRC_result = src/master/result.c src/proto/proto.c src/common/buf.c src/common/xalloc.c
FUZZ_SRC_lines = src/master/lines.c src/common/buf.c src/common/xalloc.c
FUZZ_SRC_tar_link = src/tar/extract.c
FUZZ_LIBS_tar_link = -larchive
FUZZ_SRC_tar_extract = src/tar/extract.c
FUZZ_LIBS_tar_extract = -larchive
FUZZ_SRC_opts = src/cli/opts.c src/common/num.c
FUZZ_LIBS_opts = -lm
FUZZ_SRC_json = src/common/json.c src/common/buf.c src/common/xalloc.c
FUZZ_SRC_ids = src/master/execlog.c src/common/writev.c src/master/reqid.c src/common/log.c src/common/json.c \
               src/common/buf.c src/common/xalloc.c

FUZZ_BIN = $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)

ifeq ($(V),)
  FUZZ_QUIET = @printf '    %-5s %s\n' FUZZ $@;
endif

.PHONY: fuzz fuzz-build fuzz-deps

fuzz-deps:
	@sh tools/install-deps.sh $(FUZZ_PKGS)

fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	@FUZZ_TIMEOUT=$(FUZZ_TIMEOUT) sh tests/fuzz/run.sh $(FUZZ_DIR) $(FUZZ_SECONDS) \
	  "$(FUZZ_ARGS)" $(FUZZ_TARGETS)

# One rule per target (a template, not .SECONDEXPANSION, which would change how the rest
# of the Makefile reads).
define FUZZ_RULE
$(FUZZ_DIR)/fuzz_$(1): tests/fuzz/fuzz_$(1).c tests/fuzz/fuzz.h tests/fuzz/json_check.h \
                       $(FUZZ_SRC_$(1)) $(wildcard src/*/*.h) | fuzz-deps
	@mkdir -p $(FUZZ_DIR)
	$$(FUZZ_QUIET)$$(FUZZ_CC) $$(FUZZ_CFLAGS) -o $$@ $$< $(FUZZ_SRC_$(1)) $(FUZZ_LIBS_$(1))
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_RULE,$(t))))
