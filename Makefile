# lockmgr - see README.md.
PREFIX ?= $(CURDIR)/_install
SWIFT ?= swift
PLUGINS := $(patsubst Sources/Plugins/%/Driver,%,$(wildcard Sources/Plugins/*/Driver))

.PHONY: all deps build test demo install release bench bench-sanlock bench-libvirt bench-pr fuzz fuzz-ci clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build

# Plugins are dlopen()ed by the tests, so build every product first.
test: build
	$(SWIFT) test

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

# Latency of the pr plugin's operations next to the raw PR command floor (release build).
bench-pr: deps
	$(SWIFT) build -c release --product pr-bench
	$(SWIFT) build -c release --product pr-keeper
	scripts/bench-pr.sh $$($(SWIFT) build -c release --show-bin-path) $(CYCLES)

# Every benchmark, one after the other.
bench: bench-sanlock bench-pr bench-libvirt

# libFuzzer + ASan on every parser of outside input (Fuzz/), FUZZ_SECONDS
# per target; FUZZ_TARGET=name runs one. Prints executions and crashes.
FUZZ_SECONDS ?= 60
FUZZ_TARGET ?=
fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGET)

# CI's fixed budget: 20 s per target; fails on any crash.
fuzz-ci: deps
	scripts/fuzz.sh 20

clean:
	rm -rf .build .build-fuzz _install
