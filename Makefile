# SPDX-License-Identifier: Apache-2.0
# conntrace — see `make help`.
GO      ?= go
BIN     := bin/conntrace
PREFIX  ?= /usr/local
# No cgo: a static binary that runs on any Linux of its architecture. (A
# cgo build works too, and drops its capabilities the same: README: Security.)
export CGO_ENABLED := 0
# Debian packages the build and tests need, and a file each one provides.
APT_DEPS := clang:/usr/bin/clang clang-format:/usr/bin/clang-format gcc:/usr/bin/gcc llvm:/usr/bin/llvm-strip libbpf-dev:/usr/include/bpf/bpf_helpers.h \
            bpftool:/usr/sbin/bpftool iproute2:/usr/sbin/ip cpio:/usr/bin/cpio \
            qemu-system-x86:/usr/bin/qemu-system-x86_64 qemu-system-arm:/usr/bin/qemu-system-aarch64 \
            lintian:/usr/bin/lintian groff-base:/usr/bin/groff zsh:/usr/bin/zsh fish:/usr/bin/fish podman:/usr/bin/podman runc:/usr/sbin/runc busybox-static:/bin/busybox \
            prometheus:/usr/bin/prometheus dnsmasq-base:/usr/sbin/dnsmasq dnsutils:/usr/bin/dig tmux:/usr/bin/tmux

# What `conntrace version` says: the tag or git describe, the commit, and
# the build date (SOURCE_DATE_EPOCH's, for a reproducible build). Outside
# a git clone: dev.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
DATE    ?= $(shell date -u $${SOURCE_DATE_EPOCH:+-d @$$SOURCE_DATE_EPOCH} +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X main.buildVersion=$(VERSION) -X main.buildCommit=$(COMMIT) -X main.buildDate=$(DATE)

# Root-only steps use sudo when make runs as a normal user.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.DEFAULT_GOAL := help
.PHONY: help build install image release generate vmlinux deps lint test unit storm fuzz vmtest bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

build: ## build bin/conntrace (needs only Go: the BPF objects are committed; GOARCH=arm64 for arm64)
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/conntrace

install: build ## build as you, install to $(PREFIX)/bin (sudo for the copy)
	$(SUDO) install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/conntrace
	@# A bare root machine (a container, a fresh VM) may lack sudo, which the
	@# README's `sudo conntrace watch` uses.
	@command -v sudo >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sudo >/dev/null 2>&1; } || true
	@echo "installed $(DESTDIR)$(PREFIX)/bin/conntrace; run: sudo conntrace watch --port 443"

# The image's name; tagged :latest and with the commit (git describe).
IMAGE ?= localhost/conntrace

image: ## a FROM scratch container image of a static conntrace, $(IMAGE):latest and :COMMIT (podman or docker)
	@engine=$$(command -v podman || command -v docker) || { echo "make image needs podman or docker"; exit 1; }; \
	dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o "$$dir/conntrace" ./cmd/conntrace && \
	$$engine build -q -f cmd/conntrace/Containerfile -t $(IMAGE):latest -t $(IMAGE):$(VERSION) "$$dir" && \
	echo "built $(IMAGE):latest and $(IMAGE):$(VERSION)"

release: ## dist/: for amd64 and arm64 a .tar.gz and a .deb (binary, man page, completions), and SHA256SUMS
	@command -v dpkg-deb >/dev/null || { echo "make release needs dpkg-deb (Debian's dpkg)"; exit 1; }
	$(GO) run ./cmd/release -o dist -version "$(VERSION)" -commit "$(COMMIT)" -date "$(DATE)"

generate: deps ## recompile bpf/ into tracer/internal/bpfobj with bpf2go (commit the result)
	$(GO) generate ./tracer/internal/bpfobj

vmlinux: deps ## regenerate vmlinux.h from this kernel's BTF
	{ echo "/* SPDX-License-Identifier: GPL-2.0 */"; echo "/* Kernel types from BTF: make vmlinux (bpftool btf dump ... format c). */"; \
	  bpftool btf dump file /sys/kernel/btf/vmlinux format c; } > vmlinux.h

deps: ## install missing build/test packages (apt) and Go modules
	@missing=""; for d in $(APT_DEPS); do [ -e "$${d#*:}" ] || missing="$$missing $${d%%:*}"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	$(GO) mod download

lint: ## gofmt, go vet, and clang-format for bpf/ (bpf/.clang-format)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	clang-format --dry-run --Werror bpf/*.c bpf/*.h

unit: ## the tests that need neither root nor clang (-short), as any user
	$(GO) test -short -count=1 ./...

test: deps lint ## everything, as root: lint, generated code, unit and integration tests, storm, fuzzing, then Linux 6.1 and 6.12 (amd64) and 6.12 (arm64) in VMs (vmtest)
	@[ "$$(id -u)" = 0 ] || { echo "make test loads BPF programs: run it as root"; exit 1; }
	@# One package at a time: the integration tests count exact events and
	@# losses, and another package's connection storm would add to them.
	$(GO) test -p 1 -count=1 -timeout 10m ./...
	$(MAKE) --no-print-directory storm
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory vmtest

storm: ## 60s of connections at full speed, every event traced, alone on the machine (make test runs this)
	CONNTRACE_STORM=60s $(GO) test -count=1 -run '^TestStorm$$' -v ./tracer

# package:target, each run for FUZZTIME (the seeds in the code run in every go test).
# A count, not a duration: a duration races the fuzz coordinator's own deadline
# and fails now and then with "context deadline exceeded" (golang/go#75804).
FUZZ     := ./tracer:FuzzDecodeAndFormat ./tracer/output:FuzzEscapes ./tracer/output:FuzzFormat ./tracer/dns:FuzzParse
FUZZTIME ?= 200000x
fuzz: ## run each fuzz target for FUZZTIME executions (default 200000x, 5-10 s each here; make test runs this)
	@for t in $(FUZZ); do \
		echo "fuzz $${t#*:} for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) $${t%%:*} >/tmp/conntrace-fuzz.log 2>&1 || { cat /tmp/conntrace-fuzz.log; exit 1; }; \
		tail -1 /tmp/conntrace-fuzz.log; \
	done

vmtest: deps ## the integration tests on Debian's 6.1 and 6.12 amd64 and 6.12 arm64 kernels in qemu VMs (cached in .cache/vmtest)
	$(GO) run ./cmd/vmtest

# The configurations of the UDP storms: with UDP traced, without, the floor.
UDPBENCH = watch -o json > /dev/null$$|-t >|floor
DNSBENCH = watch -o json > /dev/null$$|port 1|floor

bench: deps ## tracing overhead under a full-rate connection storm, vs tcplife, bpftrace and the hook floor (bench.md), UDP storms (bench-udp-*.md) and a DNS storm (bench-dns.md)
	@[ "$$(id -u)" = 0 ] || { echo "make bench loads BPF programs: run it as root"; exit 1; }
	@[ -e /usr/sbin/tcplife ] && [ -e /usr/bin/bpftrace ] || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libbpf-tools bpftrace >/dev/null; }
	$(GO) build -o bin/conntrace ./cmd/conntrace
	$(GO) build -tags floor -o bin/conntrace-floor ./cmd/conntrace
	$(GO) build -o bin/connstorm ./cmd/connstorm
	$(GO) run ./cmd/bench -bin bin -o bench.md $(BENCHFLAGS)
	@# UDP storms: datagrams one way, DNS-like exchanges, a new flow each.
	for m in stream rr flows; do $(GO) run ./cmd/bench -bin bin -udp $$m -payload 32 -only '$(UDPBENCH)' -o bench-udp-$$m.md $(UDPBENCHFLAGS) || exit 1; done
	@# DNS: dnsperf asking dnsmasq, every query a lookup.
	$(GO) run ./cmd/bench -bin bin -dns -only '$(DNSBENCH)' -o bench-dns.md $(DNSBENCHFLAGS)
	$(GO) test -run '^$$' -bench 'Record|DNSLookup' -benchmem ./tracer
	$(GO) test -run '^$$' -bench . -benchmem ./tracer/top

clean: ## remove build output
	rm -rf bin
