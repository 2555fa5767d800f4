#!/usr/bin/env bash
# Installs what the test tiers need on a fresh Debian machine (CI is root there).
# Idempotent and quick when everything is present: it only calls apt-get for
# commands that are missing, so a warm machine pays nothing.
set -euo pipefail

need=()
want() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
want ip iproute2
want nft nftables
want ping iputils-ping
want tshark tshark
want qemu-mips-static qemu-user-static
want qemu-system-arm qemu-system-arm
want qemu-system-mips qemu-system-mips
want qemu-system-x86_64 qemu-system-x86
want depmod kmod
want cpio cpio
want xz xz-utils
want keepalived keepalived
want /usr/lib/frr/vrrpd frr

if [ "${#need[@]}" -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps: missing ${need[*]}; run as root (or install them) to get every test tier" >&2
		exit 0
	fi
	echo "deps: installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	# tshark asks whether non-root users may capture; answer for it.
	echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
	# A partial index failure (one architecture's mirror mid-sync) makes
	# update exit non-zero while what we need is still there: carry on and
	# let install be the judge.
	apt-get update -qq || echo "deps: apt-get update reported errors; trying the install anyway" >&2
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	# The tests start zebra, bgpd and vrrpd themselves, in their own
	# namespaces with their own sockets; the service Debian's package
	# enables would run FRR on the host itself. Keep it off.
	if [[ " ${need[*]} " == *" frr "* ]] && command -v systemctl >/dev/null 2>&1 &&
		systemctl is-enabled --quiet frr 2>/dev/null; then
		systemctl disable --now frr >/dev/null 2>&1 || echo "deps: could not stop the frr service; stop it by hand" >&2
	fi
fi
