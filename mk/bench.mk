# The benchmark (bench/README.md), included by the Makefile.
#
#   make bench         installs the servers it compares (Debian packages), builds pyrt and
#                      the C ceiling, runs bench/bench.py: results in bench/results/
#                      (latest.md, latest.json, latest.tsv); about 18 minutes
#   make bench-smoke   pyrt and the C ceiling only, one short run of each figure, nothing
#                      installed, no assertion on speed: results in $(BUILD)/bench-smoke/
#
# BENCH_ARGS passes options to bench.py, e.g. BENCH_ARGS='--servers pyrt,uvicorn --runs 1'.
# BENCH_OPENRUNTIMES_SRC=DIR (a folder with open-runtimes' Python server source, never part
# of this repository: bench/README.md) adds their v5 server beside pyrt's v5 contract.

BENCH_PKGS = wrk iproute2 uwsgi-core uwsgi-plugin-python3 gunicorn python3-flask \
             python3-aiohttp python3-uvicorn python3-uvloop python3-httptools
BENCH_CEILING = $(BUILD)/bench/ceiling
BENCH_ARGS ?=

.PHONY: bench bench-smoke

# The machine's ceiling: a minimal C HTTP responder, no Python.
$(BENCH_CEILING): bench/ceiling.c
	@mkdir -p $(dir $@)
	$(QUIET_CC)$(CC) -O2 -Wall -Wextra -Werror -o $@ $<

bench: deps
	@sh tools/install-deps.sh $(BENCH_PKGS)
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory $(BENCH_CEILING)
	$(PYTHON) bench/bench.py --pyrt-bin $(abspath $(BUILD)/pyrt) \
	  --ceiling-bin $(abspath $(BENCH_CEILING)) --out bench/results $(BENCH_ARGS)

bench-smoke: all $(BENCH_CEILING)
	$(PYTHON) bench/bench.py --smoke --pyrt-bin $(abspath $(BUILD)/pyrt) \
	  --ceiling-bin $(abspath $(BENCH_CEILING)) --out $(BUILD)/bench-smoke $(BENCH_ARGS)
