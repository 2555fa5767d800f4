#!/usr/bin/env bash
# tools/ci/deps.sh [TARGET] — installs what one make target needs on a fresh
# Debian machine (CI is root there), and nothing more:
#   demo [BOARD]  make demo / make vmtest: the board's QEMU, kmod, cpio, xz,
#                 tshark, iproute2, ping, nftables (the demo's NAT)
#                 (BOARD defaults to qemu-arm64)
#   test          make test (the default): every test tier — the demo's set,
#                 every board's QEMU, qemu-user (MIPS unit tests), and
#                 keepalived and frr (the VRRP interop peers)
# Idempotent and quick when everything is present: it only calls apt-get for
# commands that are missing, so a warm machine pays nothing.
#
# keepalived and frr are test peers, not services for this machine: their
# packages would start (and enable) their daemons. A policy-rc.d that
# forbids starting services is in place during the install (only if the
# machine has none of its own), and under systemd the units the install
# enabled are disabled again; units the operator had enabled stay as they were.
set -euo pipefail

target=${1:-test}
board=${2:-qemu-arm64}
here=$(cd "$(dirname "$0")/../.." && pwd)

need=()
# HAGENT_DEPS_PLAN=1: print what would be installed on a bare machine, one
# package a line, and install nothing (the plan's test uses it).
plan=${HAGENT_DEPS_PLAN:-0}
want() { [ "$plan" != 1 ] && command -v "$1" >/dev/null 2>&1 || need+=("$2"); }

# qemu_pkg maps a board's QEMU binary to its Debian package.
qemu_pkg() {
	case $1 in
	qemu-system-arm | qemu-system-aarch64) echo qemu-system-arm ;;
	qemu-system-mips*) echo qemu-system-mips ;;
	qemu-system-x86_64) echo qemu-system-x86 ;;
	*) echo "deps: unknown QEMU $1" >&2; return 1 ;;
	esac
}
want_board() {
	local conf=$here/board/$1/board.conf q
	[ -f "$conf" ] || { echo "deps: no board $1 ($conf missing)" >&2; exit 2; }
	q=$(sed -n 's/^QEMU="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$conf")
	want "$q" "$(qemu_pkg "$q")"
}

demo_set() {
	want ip iproute2
	want ping iputils-ping
	want tshark tshark
	want depmod kmod
	want cpio cpio
	want xz xz-utils
	want nft nftables
	want_board "$1"
}

case $target in
demo)
	demo_set "$board"
	;;
test)
	for b in "$here"/board/*/board.conf; do
		b=${b%/board.conf}
		demo_set "${b##*/}"
	done
	want qemu-mips-static qemu-user-static
	want keepalived keepalived
	want /usr/lib/frr/vrrpd frr
	;;
*)
	echo "usage: tools/ci/deps.sh [demo [BOARD] | test]" >&2
	exit 2
	;;
esac
# A package once per list (several boards share one QEMU package).
mapfile -t need < <(printf '%s\n' "${need[@]}" | awk 'NF && !seen[$0]++')

if [ "$plan" = 1 ]; then
	printf '%s\n' "${need[@]}"
	exit 0
fi
[ "${#need[@]}" -gt 0 ] || exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing ${need[*]}; run as root (or install them) to get every test tier" >&2
	exit 0
fi
echo "deps ($target): installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer for it.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections

# Daemons the install must not leave running or enabled.
daemons=()
for p in "${need[@]}"; do
	case $p in
	keepalived) daemons+=(keepalived) ;;
	frr) daemons+=(frr) ;;
	esac
done
systemd=0
[ -d /run/systemd/system ] && command -v systemctl >/dev/null && systemd=1
declare -A was_enabled was_active
policy=""
if [ "${#daemons[@]}" -gt 0 ]; then
	if [ "$systemd" = 1 ]; then
		for d in "${daemons[@]}"; do
			was_enabled[$d]=$(systemctl is-enabled "$d" 2>/dev/null || true)
			was_active[$d]=$(systemctl is-active "$d" 2>/dev/null || true)
		done
	fi
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		# 101: action forbidden (invoke-rc.d and deb-systemd-invoke obey it).
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\n# tools/ci/deps.sh: no daemon starts while it installs test peers\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		trap 'rm -f "$policy"' EXIT
	fi
fi

# A partial index failure (one architecture's mirror mid-sync) makes
# update exit non-zero while what we need is still there: carry on and
# let install be the judge.
apt-get update -qq || echo "deps: apt-get update reported errors; trying the install anyway" >&2
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

if [ "$systemd" = 1 ]; then
	# Leave each unit as the operator had it: disable only what this install
	# enabled, stop only what it started (were policy-rc.d already present and
	# permissive). By unit name through systemd, never a process kill.
	for d in "${daemons[@]}"; do
		case ${was_enabled[$d]:-} in
		enabled | enabled-runtime) ;;
		*) systemctl disable "$d" >/dev/null 2>&1 || true ;;
		esac
		[ "${was_active[$d]:-}" = active ] || systemctl stop "$d" >/dev/null 2>&1 || true
	done
fi
