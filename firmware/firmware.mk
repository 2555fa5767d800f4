# Firmware targets, included by the top Makefile (-include firmware/firmware.mk).
#   make image  BOARD=qemu-arm64   build/firmware/$(BOARD)/initramfs.cpio.xz + vmlinuz
#   make images                    every board under board/
#   make boot   BOARD=qemu-arm64   interactive serial console on one guest
#   make vmtest                    the boot tests (tier 3) alone
#   make demo [V=1]                two Home Agent guests, a mobile node, one behind NAT, a mobile network, a failover
#                                  (V=1: also the build, both consoles, hactl's whole answers)
# HAGENT_CONFIG=path ships another /etc/hagent.toml.
BOARD ?= qemu-arm64
FW_BOARDS := $(notdir $(patsubst %/,%,$(dir $(wildcard board/*/board.conf))))

.PHONY: image images boot vmtest firmware-demo firmware-deps

image:
	@HAGENT_VERSION=$(VERSION) firmware/mkimage.sh $(BOARD)

images:
	@set -e; for b in $(FW_BOARDS); do HAGENT_VERSION=$(VERSION) firmware/mkimage.sh $$b; done

# The console is this terminal; Ctrl-A X quits QEMU, `hainit -poweroff` in the
# guest stops the agent and powers off.
boot: image
	@$(GO) run ./firmware/cmd/boot -board $(BOARD)

vmtest:
	HAGENT_TEST_STRICT=$$( [ "$$(id -u)" = 0 ] && echo 1 || echo 0 ) $(GO) test -count=1 -v -timeout 15m ./firmware/vmtest/

firmware-deps:
	@tools/ci/deps.sh demo $(BOARD)

# The demo exits 1 with "FAILED: <step>: ..." when a step does not hold (make
# then exits 2).
firmware-demo: firmware-deps
	@$(GO) run ./firmware/cmd/demo -board $(BOARD) $(if $(V),-v)

# `make demo` is the README's main job. It has no recipe of its own, only
# firmware-demo as a prerequisite: the top Makefile may list more
# prerequisites for it without the two recipes clashing.
demo: firmware-demo
