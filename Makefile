# hagent — build, test, lint, bench.  `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/hagent/hagent/ha/internal/version.Version=$(VERSION)
GOBUILD := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'
CMDS := ./ha/cmd/hagent ./ha/cmd/hactl ./tools/mnsim
BIN := build/bin
FUZZTIME ?= 5s
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: help build cross test unit fuzz lint bench bench-go soak demo deps clean
SOAK ?= 10m

help:
	@echo "make build     static binaries for the host and cross builds (arm, arm64, mips, mipsle) into $(BIN)/"
	@echo "make test      every test tier (installs its packages with apt-get when root)"
	@echo "make unit      unit tests only: go test -short ./... (no root, no QEMU)"
	@echo "make fuzz      every fuzz target for FUZZTIME=$(FUZZTIME) each"
	@echo "make test-mips most ha/ unit tests on big-endian MIPS under qemu-mips-static (part of make test)"
	@echo "make vmtest    the firmware boot tests alone (QEMU; the networked ones as root)"
	@echo "make lint      gofmt, go vet, staticcheck, go mod tidy -diff"
	@echo "make bench     the performance report docs/bench-report.md with plots (root; see tools/benchreport)"
	@echo "make bench-go  every Go benchmark, raw, with -benchmem"
	@echo "make image     the firmware image of BOARD=$(BOARD) into build/firmware/BOARD/"
	@echo "make images    the firmware image of every board under board/"
	@echo "make boot      one guest of BOARD=$(BOARD) with its serial console on this terminal (Ctrl-A X quits)"
	@echo "make demo      the main job: two Home Agent guests, registration, tunnel, a node behind NAT (UDP tunnel), a mobile network, failover (root; V=1 prints everything)"
	@echo "make soak      chaos test for SOAK=$(SOAK) (SEED=N replays a run)"

build: cross
	$(GOBUILD) -o $(BIN)/ $(CMDS)

cross:
	GOOS=linux GOARCH=arm GOARM=7 $(GOBUILD) -o $(BIN)/linux-arm/ $(CMDS)
	GOOS=linux GOARCH=arm64 $(GOBUILD) -o $(BIN)/linux-arm64/ $(CMDS)
	GOOS=linux GOARCH=mips GOMIPS=softfloat $(GOBUILD) -o $(BIN)/linux-mips/ $(CMDS)
	GOOS=linux GOARCH=mipsle GOMIPS=softfloat $(GOBUILD) -o $(BIN)/linux-mipsle/ $(CMDS)

deps:
	@tools/ci/deps.sh test

# The test command CI runs. Order matters: lint and fuzz first, the full go
# test run last, so that the output ends with go test's own summary lines.
# HAGENT_TEST_STRICT=1 turns "skipped: needs root/qemu/tshark" into failures:
# after `deps` everything is there, and a silently skipped tier is a defect.
test: deps build
	$(GO) vet ./...
	FUZZTIME=$(FUZZTIME) tools/ci/fuzzall.sh
	$(MAKE) --no-print-directory test-mips
	HAGENT_TEST_STRICT=$$( [ "$$(id -u)" = 0 ] && echo 1 || echo 0 ) $(GO) test -count=1 -timeout 25m ./...

unit:
	$(GO) test -count=1 -short ./...

# Big-endian: wire goldens, state machines and netlink message goldens run
# on MIPS under qemu-user. groupio and role/runner are left out: they ask
# the kernel for interfaces over rtnetlink, which qemu-user's big-endian
# netlink translation cannot carry ("parsenetlinkrouteattr: invalid
# argument"); groupio's byte-order logic (cmsg parsing) is covered by its
# fuzz target and runs natively, role/runner has none (its loop is pure).
MIPS_PKGS = $(shell $(GO) list ./ha/... | grep -v -e /groupio -e /itest -e /role/runner)
test-mips:
	@echo "=== test-mips: big-endian unit tests under qemu-mips-static ($(words $(MIPS_PKGS)) packages) ==="
	@if command -v qemu-mips-static >/dev/null; then \
		CGO_ENABLED=0 GOARCH=mips GOMIPS=softfloat $(GO) test -count=1 -short -exec qemu-mips-static $(MIPS_PKGS) ; \
	else echo "test-mips: qemu-mips-static missing, skipped (make deps installs it)"; fi

fuzz:
	FUZZTIME=$(FUZZTIME) tools/ci/fuzzall.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) mod tidy -diff

# The performance report (docs/bench-report.md and docs/img/*.png), as root:
# every figure with how it was measured; see tools/benchreport.
bench:
	$(GO) run ./tools/benchreport -o docs/bench-report.md

# Every Go benchmark, raw.
bench-go:
	$(GO) test -run='^$$' -bench=. -benchmem ./ha/... 

# The chaos test for as long as you like: three agents, mobile nodes, kills,
# link flaps, loss and partitions; prints its seed (replay with SEED=N).
soak: deps
	$(GO) run ./tools/chaos -duration $(SOAK) $(if $(SEED),-seed $(SEED))

clean:
	rm -rf build

-include firmware/firmware.mk
