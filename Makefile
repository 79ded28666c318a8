# lockmgr - see README.md.
PREFIX ?= $(CURDIR)/_install
SWIFT ?= swift
PLUGINS := $(patsubst Sources/Plugins/%/Driver,%,$(wildcard Sources/Plugins/*/Driver))

.PHONY: all deps build test test-asan test-tsan demo install release bench bench-sanlock bench-libvirt bench-pr clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build

# Plugins are dlopen()ed by the tests, so build every product first.
test: build
	$(SWIFT) test

# The whole suite under AddressSanitizer (with LeakSanitizer) and under
# ThreadSanitizer: every product instrumented (plugins, lockmgr, pr-keeper,
# pr-tool, the tests), each build in its own scratch path. Options and
# suppressions: Tests/SanitizerSupport; how children get the runtime:
# Tests/TestSupport/Sanitizer.swift.
test-asan: deps
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	$(SWIFT) test --skip-build --sanitize=address --scratch-path .build-asan

# Not under TSan, and why (make test and test-asan run them):
# - LibvirtTests: libvirt hands the preloaded runtime on to QEMU, whose
#   coroutines (longjmp between stacks) abort TSan ("can't find longjmp buf").
# - PRLifecycleTests: the TSan-built pr-keeper aborts in TSan's allocator
#   (CHECK in sanitizer_allocator_secondary.h) freeing its argv copies right
#   after posix_spawn; ASan sees no error there. Open: see the issue 6 notes.
TSAN_SKIP := --skip LibvirtTests --skip PRLifecycleTests
test-tsan: deps
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan
	$(SWIFT) test --skip-build --sanitize=thread --scratch-path .build-tsan $(TSAN_SKIP)

release: deps
	$(SWIFT) build -c release

install: release
	@bin=$$($(SWIFT) build -c release --show-bin-path); \
	install -d $(PREFIX)/bin $(PREFIX)/lib/lock_manager $(PREFIX)/libexec/lockmgr $(PREFIX)/etc/lockmgr; \
	install -m 0755 $$bin/lockmgr $(PREFIX)/bin/lockmgr; \
	install -m 0755 $$bin/pr-tool $(PREFIX)/bin/pr-tool; \
	install -m 0755 $$bin/pr-keeper $(PREFIX)/libexec/lockmgr/pr-keeper; \
	for p in $(PLUGINS); do install -m 0755 $$bin/liblockmgr_$$p.so $(PREFIX)/lib/lock_manager/$$p.so; done; \
	for f in etc/*.conf; do \
	    [ -e $(PREFIX)/etc/lockmgr/$$(basename $$f) ] || install -m 0644 $$f $(PREFIX)/etc/lockmgr/; \
	done; \
	echo "installed lockmgr and plugins ($(PLUGINS)) under $(PREFIX)"

demo: install
	scripts/demo.sh $(PREFIX)

# Acquire+release latency: our sanlock plugin, libvirt's sanlock.so, the raw API.
CYCLES ?= 300
bench-sanlock: deps
	$(SWIFT) build -c release --product lockmgr_sanlock
	$(SWIFT) build -c release --product sanlock-bench
	$$($(SWIFT) build -c release --show-bin-path)/sanlock-bench $(CYCLES)

# Real libvirtd + QEMU: start, create/suspend/resume/destroy, per sanlock plugin.
LIBVIRT_CYCLES ?= 10
bench-libvirt: deps
	$(SWIFT) build -c release --product lockmgr_sanlock
	$(SWIFT) build -c release --product libvirt-bench
	$$($(SWIFT) build -c release --show-bin-path)/libvirt-bench $(LIBVIRT_CYCLES)

# The pr plugin (.so through our host library, keeper on and off) next to the
# raw PR command floor, at 1-256 LUNs; writes $(BENCH_OUT)/pr.md and pr-scale.tsv.
BENCH_OUT ?= $(CURDIR)/.build/bench
bench-pr: deps
	$(SWIFT) build -c release --product lockmgr_pr
	$(SWIFT) build -c release --product pr-keeper
	$(SWIFT) build -c release --product pr-bench
	scripts/bench-pr.sh $$($(SWIFT) build -c release --show-bin-path) $(CYCLES) $(BENCH_OUT)

# Every benchmark, one after the other.
bench: bench-sanlock bench-pr bench-libvirt

clean:
	rm -rf .build .build-asan .build-tsan _install
