# Firmware targets, included by the top Makefile (-include firmware/firmware.mk).
#   make image  BOARD=qemu-arm64   build/firmware/$(BOARD)/initramfs.cpio.xz + vmlinuz
#   make images                    every board under board/
#   make boot   BOARD=qemu-arm64   interactive serial console on one guest
#   make vmtest                    the boot tests (tier 3) alone
#   make firmware-demo             two Home Agent guests, a mobile node, a failover
# HAGENT_CONFIG=path ships another /etc/hagent.toml.
BOARD ?= qemu-arm64
FW_BOARDS := $(notdir $(patsubst %/,%,$(dir $(wildcard board/*/board.conf))))

.PHONY: image images boot vmtest firmware-demo firmware-deps

image:
	@firmware/mkimage.sh $(BOARD)

images:
	@set -e; for b in $(FW_BOARDS); do firmware/mkimage.sh $$b; done

# The console is this terminal; Ctrl-A X quits QEMU, `hainit -poweroff` in the
# guest stops the agent and powers off.
boot: image
	@$(GO) run ./firmware/cmd/boot -board $(BOARD)

vmtest:
	HAGENT_TEST_STRICT=$$( [ "$$(id -u)" = 0 ] && echo 1 || echo 0 ) $(GO) test -count=1 -v -timeout 15m ./firmware/vmtest/

firmware-deps:
	@tools/ci/deps.sh

firmware-demo: firmware-deps
	@$(GO) run ./firmware/cmd/demo -board $(BOARD)

# The README's main job; a rule without a recipe, so the lead's Makefile may
# add its own prerequisites to it.
demo: firmware-demo
