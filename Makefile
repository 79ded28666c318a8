# lockmgr - see README.md.
PREFIX ?= $(CURDIR)/_install
SWIFT ?= swift
# The release, in one place: lockmgr --version, pr-tool --version and the package.
VERSION := $(shell sed -n 's/^ *public static let string = "\(.*\)"$$/\1/p' Sources/LockDriver/Tool/Version.swift)

.PHONY: all deps build lint format test deb test-deb test-no-toolchain man test-asan test-tsan demo install release bench bench-sanlock bench-load bench-libvirt bench-pr bench-pr-latency bench-keepers fuzz fuzz-ci stress test-lab clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build

# swift-format (the toolchain's `swift format`) with the repo's .swift-format:
# `make lint` fails on any finding, `make format` rewrites the files in place.
FORMAT_PATHS := Package.swift Sources Support Tests Benchmarks Fuzz
lint:
	$(SWIFT) format lint --strict --recursive --parallel $(FORMAT_PATHS)

format:
	$(SWIFT) format format --in-place --recursive --parallel $(FORMAT_PATHS)

# Plugins are dlopen()ed by the tests, so build every product first.
test: build
	$(SWIFT) test

# The whole suite under AddressSanitizer (with LeakSanitizer) and under
# ThreadSanitizer: every product instrumented (plugins, lockmgr, pr-keeper,
# pr-tool, the tests), each build in its own scratch path. Options and
# suppressions: Support/SanitizerSupport; how children get the runtime:
# Support/Harness/Sanitizer.swift. Sanitized builds link the tools to the
# toolchain's shared runtime (Package.swift, LOCKMGR_SANITIZED_BUILD), so
# DeployTests, which prove the installed tools need no toolchain, run in
# make test and make test-no-toolchain only.
SANITIZED_SKIP := --skip DeployTests
test-asan: deps
	LOCKMGR_SANITIZED_BUILD=1 $(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	LOCKMGR_SANITIZED_BUILD=1 $(SWIFT) test --skip-build --sanitize=address --scratch-path .build-asan $(SANITIZED_SKIP)

# Not under TSan, and why (make test and test-asan run it): LibvirtTests:
# libvirt hands the preloaded runtime on to QEMU, whose coroutines (longjmp
# between stacks) abort TSan ("can't find longjmp buf").
TSAN_SKIP := --skip LibvirtTests $(SANITIZED_SKIP)
test-tsan: deps
	LOCKMGR_SANITIZED_BUILD=1 $(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan
	LOCKMGR_SANITIZED_BUILD=1 $(SWIFT) test --skip-build --sanitize=thread --scratch-path .build-tsan $(TSAN_SKIP)

# The kernel lab: two Debian kernels booted under QEMU (TCG) as two hosts,
# each with its own libvirtd loading our pr plugin from LAB_PREFIX, on a
# kernel iSCSI disk of a private tgtd; scenarios in Tests/Lab/scenarios.sh
# (LAB_SCENARIOS=name... runs some). Kernel and initramfs are cached in
# .build-lab/cache; every command's output is kept in .build-lab/run.
LAB_PREFIX ?= $(CURDIR)/.build-lab/prefix
LAB_SCENARIOS ?=
test-lab: deps
	$(MAKE) install PREFIX=$(LAB_PREFIX)
	Tests/Lab/run.sh $(LAB_PREFIX) $(LAB_SCENARIOS)

# The race tests at volume (CI runs their short default): the pr races (one
# LU; two LUs in either order) and the sanlock races, STRESS_ROUNDS rounds
# each with STRESS_HOSTS hosts, the same checks after every round.
STRESS_ROUNDS ?= 1000
STRESS_HOSTS ?= 3
stress: build
	$(SWIFT) build --build-tests
	LOCKMGR_RACE_ROUNDS=$(STRESS_ROUNDS) LOCKMGR_RACE_HOSTS=$(STRESS_HOSTS) \
	    $(SWIFT) test --skip-build --filter 'PRRaceTests/exactlyOneWinnerEveryRound' --filter 'Races/racingHosts'

release: deps
	$(SWIFT) build -c release

install: release
	scripts/install-files.sh $$($(SWIFT) build -c release --show-bin-path) $(PREFIX)

demo: install
	scripts/demo.sh $(PREFIX)

# ---- deployment (issue 13) ----------------------------------------------------
# The man pages: lockmgr(8) and pr-tool(8) generated from the programs'
# own argument parsers, the config files' section 5 pages from docs/man.
man: release
	scripts/deb/man.sh .build-deb/man

# The Debian package: .build-deb/lockmgr_$(VERSION)_<arch>.deb (scripts/deb/build.sh).
deb: release
	scripts/deb/build.sh $(VERSION)

# The package on a clean Debian 12 root (debootstrap, cached in .build-deb):
# apt install, every program, the nop, pr (tgtd on loopback) and sanlock
# flows from the installed files, dpkg -r, dpkg -i again; then lintian.
test-deb: deb
	scripts/deb/test-package.sh .build-deb/lockmgr_$(VERSION)_$$(dpkg --print-architecture).deb

# The release build's installed files with the Swift toolchain hidden
# (Tests/DeployTests; `make test` runs the same tests on the debug build).
test-no-toolchain: release
	$(SWIFT) build --build-tests
	LOCKMGR_BUILD_DIR=$$($(SWIFT) build -c release --show-bin-path) $(SWIFT) test --skip-build --filter NoToolchainTests
# ---- end deployment -----------------------------------------------------------

# Benchmarks, release builds. Each writes its report section into BENCH_OUT.
BENCH_OUT ?= bench-results
SANLOCK_CYCLES ?= 100
LOAD_CYCLES ?= 200
LIBVIRT_CYCLES ?= 10
PR_CYCLES ?= 300
PR_WORK_DIR ?=
BENCH_BIN = $$($(SWIFT) build -c release --show-bin-path)
define release-products
	@for p in $(1); do $(SWIFT) build -c release --product $$p || exit 1; done
endef

# Acquire/release/handover at 1-8 leases: our sanlock plugin, libvirt's sanlock.so, raw calls, nop.
bench-sanlock: deps
	$(call release-products,lockmgr_nop lockmgr_sanlock sanlock-bench)
	$(BENCH_BIN)/sanlock-bench --cycles $(SANLOCK_CYCLES) --out $(BENCH_OUT)

# Plugin load + init time and memory, ours against libvirt's C plugins.
bench-load: deps
	$(call release-products,lockmgr_nop lockmgr_sanlock lockmgr_pr load-bench plugin-load-probe)
	$(BENCH_BIN)/load-bench --cycles $(LOAD_CYCLES) --out $(BENCH_OUT)

# Real libvirtd + QEMU: start, create/suspend/resume/destroy, per sanlock plugin.
bench-libvirt: deps
	$(call release-products,lockmgr_sanlock libvirt-bench)
	$(BENCH_BIN)/libvirt-bench --cycles $(LIBVIRT_CYCLES) --out $(BENCH_OUT)

# The pr plugin (.so through our host library, keeper on and off, and
# through pr-sessiond) next to the raw PR command floor, at 1-256 LUNs;
# writes $(BENCH_OUT)/pr.md, pr-scale.tsv and downtime-pr.md.
# PR_WORK_DIR=/tmp puts the keepers' records there instead of on tmpfs.
bench-pr: deps
	$(SWIFT) build -c release --product lockmgr_pr
	$(SWIFT) build -c release --product pr-keeper
	$(SWIFT) build -c release --product pr-sessiond
	$(SWIFT) build -c release --product pr-bench
	PR_WORK_DIR=$(PR_WORK_DIR) scripts/bench-pr.sh $$($(SWIFT) build -c release --show-bin-path) $(PR_CYCLES) $(BENCH_OUT)

# The added migration downtime with LATENCY_US of network latency each way
# between initiators and tgtd (scripts/bench-pr-latency.sh; prints only).
LATENCY_US ?= 100
LATENCY_CYCLES ?= 100
bench-pr-latency: deps
	$(call release-products,lockmgr_pr pr-keeper pr-sessiond pr-bench)
	scripts/bench-pr-latency.sh $(BENCH_BIN) $(LATENCY_US) $(LATENCY_CYCLES) 1 8

# VMS pr keepers (one sleeping VM and one LU each) against one tgtd for
# KEEPER_SECONDS: CPU, memory, command rate, and how fast each notices its
# VM's exit (scripts/bench-keepers.sh; writes keepers.md into BENCH_OUT).
KEEPER_VMS ?= 200
KEEPER_SECONDS ?= 180
KEEPER_INTERVAL_MS ?= 1000
bench-keepers: deps
	$(call release-products,lockmgr lockmgr_pr pr-keeper pr-tool)
	scripts/bench-keepers.sh $(BENCH_BIN) $(KEEPER_VMS) $(KEEPER_SECONDS) $(KEEPER_INTERVAL_MS) $(BENCH_OUT)

# Every benchmark into one report: $(BENCH_OUT)/report.md (fails if a section is missing).
bench: deps
	$(call release-products,lockmgr_nop lockmgr_sanlock lockmgr_pr pr-keeper pr-sessiond pr-bench sanlock-bench load-bench plugin-load-probe libvirt-bench)
	SANLOCK_CYCLES=$(SANLOCK_CYCLES) LOAD_CYCLES=$(LOAD_CYCLES) LIBVIRT_CYCLES=$(LIBVIRT_CYCLES) PR_CYCLES=$(PR_CYCLES) \
	    scripts/bench-report.sh $(BENCH_BIN) $(BENCH_OUT)

# libFuzzer + ASan on every parser of outside input (Fuzz/), FUZZ_SECONDS
# per target; FUZZ_TARGET=name runs one; FUZZ_RUNS=N stops a target after N
# executions. Prints executions and crashes.
FUZZ_SECONDS ?= 60
FUZZ_TARGET ?=
FUZZ_RUNS ?= 0
fuzz: deps
	FUZZ_RUNS=$(FUZZ_RUNS) scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGET)

# CI's fixed budget: 20 s per target; fails on any crash.
fuzz-ci: deps
	scripts/fuzz.sh 20

clean:
	rm -rf .build .build-asan .build-tsan .build-fuzz .build-deb _install $(BENCH_OUT)
