# scoutfs-notify entry points.  See README.md (and docs/ for each one).
#
#   make test                          every test tier that can run here
#   make fuzz [FUZZ_SECS=300]          the fuzz targets, FUZZ_SECS seconds each
#                                      (tests/fuzz/run.sh; make test runs 30 s each),
#                                      what they grow and find kept in build/fuzz/
#   make vm-test SCOUTFS_SRC=... [BASE=v1.30] [DEBUG_KERNEL=1]
#                                      the series on a real kernel in QEMU
#                                      (DEBUG_KERNEL=1: on the lockdep/KASAN/
#                                      kmemleak kernel, docs/debug-kernel.md;
#                                      also for make test's matrix)
#   make systemd-test SCOUTFS_SRC=... [BASE=v1.30]
#                                      the unit under systemd, with a scoutfs mount unit
#   make demo SCOUTFS_SRC=... [BASE=v1.30]
#                                      a reader attached, file activity, records printed
#   make bench [SCOUTFS_SRC=...]       benchmark figures (build/bench.md)
#   make upstream-suite SCOUTFS_SRC=... [BASE=v1.30] [UPSTREAM_TIMEOUT=secs]
#                       [PASSES=notify] [DEBUG_KERNEL=1]
#                                      upstream's run-tests.sh, unpatched vs patched + daemon
#                                      (PASSES=notify: that pass alone; DEBUG_KERNEL=1: on
#                                      the debug kernel, its detectors checked)
#   make series SCOUTFS_SRC=...        patches/ and every series/ generated from kmod/, utils/
#                                      and commits/ (scripts/series.sh, docs/releases.md)
#   make series-check SCOUTFS_SRC=...  fails where a committed series is not what they generate
#   make series-edit SCOUTFS_SRC=...   build/edit: the base release with the series as commits
#   make series-export SCOUTFS_SRC=... build/edit's commits back into the source, then make series
SHELL := /bin/bash
BASE ?= $(shell cat base.txt)
SCOUTFS_SRC ?=
SUITE ?=
DEBUG_KERNEL ?=
PASSES ?=
FUZZ_SECS ?= 300

.PHONY: test fuzz vm-test systemd-test demo bench upstream-suite series series-check series-edit series-export lint help

help:
	@sed -n '3,/^[^#]/{/^#/s/^# \{0,1\}//p}' Makefile

test:
	tests/run.sh

lint:
	tests/lint.sh

fuzz:
	tests/fuzz/run.sh --time "$(FUZZ_SECS)" --keep build/fuzz

vm-test:
	scripts/vm-test.sh --src "$(SCOUTFS_SRC)" --base "$(BASE)" $(if $(SUITE),--suite "$(SUITE)") $(if $(filter 1,$(DEBUG_KERNEL)),--debug-kernel)

systemd-test:
	scripts/systemd-test.sh --src "$(SCOUTFS_SRC)" --base "$(BASE)"

demo:
	scripts/demo.sh --src "$(SCOUTFS_SRC)" --base "$(BASE)"

bench:
	scripts/bench.sh $(if $(SCOUTFS_SRC),--src "$(SCOUTFS_SRC)") --base "$(BASE)"

upstream-suite:
	scripts/upstream-suite.sh --src "$(SCOUTFS_SRC)" --base "$(BASE)" $(if $(UPSTREAM_TIMEOUT),--timeout "$(UPSTREAM_TIMEOUT)") $(if $(PASSES),--passes "$(PASSES)") $(if $(filter 1,$(DEBUG_KERNEL)),--debug-kernel)

series:
	scripts/series.sh --src "$(SCOUTFS_SRC)" generate

series-check:
	scripts/series.sh --src "$(SCOUTFS_SRC)" generate --check

series-edit:
	scripts/series.sh --src "$(SCOUTFS_SRC)" edit $(if $(FORCE),--force)

series-export:
	scripts/series.sh --src "$(SCOUTFS_SRC)" export
