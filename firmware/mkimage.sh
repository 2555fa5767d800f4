#!/usr/bin/env bash
# firmware/mkimage.sh BOARD — builds the firmware image of one board:
#   build/firmware/BOARD/initramfs.cpio     the u-root initramfs (busybox mode)
#   build/firmware/BOARD/initramfs.cpio.xz  the same, xz (what a router flashes)
#   build/firmware/BOARD/vmlinuz            the board's Debian kernel
#   build/firmware/BOARD/sizes              sizes, one KEY=VALUE per line
# The kernel .deb is fetched once per architecture and cached under cache/.
# `make image`, the boot tests (firmware/vm) and the demo all call this script.
#
# Environment: HAGENT_CONFIG=path  ship this file as /etc/hagent.toml
#              HAGENT_EXTRA_FILES=dir  overlay this tree last (test configs)
#              HAGENT_FW_OUT=dir   output directory (default build/firmware/BOARD)
#              HAGENT_FORCE=1      rebuild even when the inputs are unchanged
#              GO=go               the Go command
#              HAGENT_KERNEL_REFRESH=1  re-resolve and re-fetch the kernel
#              HAGENT_VERSION=v    the version stamped into hagent (default: git describe)
#              HAGENT_FINGERPRINT=1  print the inputs' fingerprint and exit (no build)
set -euo pipefail

board=${1:?usage: firmware/mkimage.sh BOARD   (boards: $(ls "$(dirname "$0")/../board" | tr '\n' ' '))}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
conf=board/$board/board.conf
if [ ! -f "$conf" ]; then
	echo "mkimage: no board '$board' ($conf missing); boards: $(ls board | tr '\n' ' ')" >&2
	exit 2
fi
GOARM="" GOMIPS="" GOAMD64=""
# shellcheck source=/dev/null
. "$conf"
GO=${GO:-go}
config=${HAGENT_CONFIG:-rootfs/etc/hagent.toml}
out=${HAGENT_FW_OUT:-build/firmware/$board}
kcache=cache/kernel/$DEB_ARCH/$KERNEL_PKG
say() { echo "mkimage[$board]: $*" >&2; }
need() { command -v "$1" >/dev/null || { say "missing $1: apt-get install $2 (or run make deps)"; exit 2; }; }
# The version hagent and hactl report, as `make build` stamps it. The busybox
# build runs in a temporary tree, so Go's own VCS stamp cannot see our git.
version=${HAGENT_VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
t0=$(date +%s%N)

# --- kernel: resolve the metapackage, download, unpack, depmod (cached) ---
fetch_kernel() {
	need apt-get apt
	local native
	native=$(dpkg --print-architecture)
	if [ "$DEB_ARCH" != "$native" ] && ! dpkg --print-foreign-architectures | grep -qx "$DEB_ARCH"; then
		[ "$(id -u)" = 0 ] || { say "run as root once (dpkg --add-architecture $DEB_ARCH; apt-get update)"; exit 2; }
		say "dpkg --add-architecture $DEB_ARCH; apt-get update"
		dpkg --add-architecture "$DEB_ARCH"
		apt-get update -qq || say "apt-get update reported errors; trying with what it got"
	fi
	local pkg
	resolve() { apt-cache depends "$KERNEL_PKG:$DEB_ARCH" 2>/dev/null | awk '$1=="Depends:" && $2 ~ /^linux-image-/ {print $2; exit}'; }
	pkg=$(resolve)
	if [ -z "$pkg" ]; then
		[ "$(id -u)" = 0 ] && { apt-get update -qq || true; }
		pkg=$(resolve)
		[ -n "$pkg" ] || { say "cannot resolve $KERNEL_PKG:$DEB_ARCH with apt-cache (apt-get update?)"; exit 2; }
	fi
	say "kernel: $KERNEL_PKG:$DEB_ARCH -> $pkg (download and unpack, once)"
	rm -rf "$kcache.tmp"
	mkdir -p "$kcache.tmp"
	(cd "$kcache.tmp" && apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
	local deb
	deb=$(ls "$kcache.tmp"/*.deb 2>/dev/null | head -1)
	[ -n "$deb" ] || { say "apt-get download $pkg failed"; exit 2; }
	dpkg -x "$deb" "$kcache.tmp/root"
	local kver
	kver=$(ls "$kcache.tmp/root/lib/modules")
	depmod -b "$kcache.tmp/root" "$kver"
	cp "$kcache.tmp/root/boot/vmlinuz-$kver" "$kcache.tmp/vmlinuz"
	echo "$kver" >"$kcache.tmp/kver"
	basename "$deb" >"$kcache.tmp/deb"
	rm -f "$deb"
	rm -rf "$kcache"
	mv "$kcache.tmp" "$kcache"
}
if [ "${HAGENT_FINGERPRINT:-0}" != 1 ]; then
	need depmod kmod; need xz xz-utils; need dpkg dpkg
	if [ ! -f "$kcache/kver" ] || [ "${HAGENT_KERNEL_REFRESH:-0}" = 1 ]; then
		fetch_kernel
	fi
fi
kver=$(cat "$kcache/kver" 2>/dev/null || echo unfetched)
kmods=$kcache/root/lib/modules/$kver

# --- up to date? Inputs: every non-test Go file, go.mod/go.sum, the board,
# rootfs, the config, extra files, this script, the kernel, Go and stamped
# versions. Contents only, never the paths they were named by: `make image`
# runs this script by a relative path, firmware/vm by an absolute one, and
# HAGENT_CONFIG may be either; all of them must find the same image.
inputs() {
	{
		find ha firmware tools -name '*.go' ! -name '*_test.go' -print0 2>/dev/null | sort -z | xargs -0 sha256sum
		[ -d rootfs ] && find rootfs -type f -print0 | sort -z | xargs -0 -r sha256sum
		[ -n "${HAGENT_EXTRA_FILES:-}" ] && (cd "$HAGENT_EXTRA_FILES" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum)
		sha256sum go.mod go.sum "$conf"
		echo "config $(sha256sum <"$config" | cut -d' ' -f1)"
		echo "script $(sha256sum <"$top/firmware/mkimage.sh" | cut -d' ' -f1)"
		echo "$kver $("$GO" env GOVERSION) $version"
	} | sha256sum | cut -d' ' -f1
}
[ -f "$config" ] || { say "config $config missing (HAGENT_CONFIG names another)"; exit 2; }
stamp=$(inputs)
if [ "${HAGENT_FINGERPRINT:-0}" = 1 ]; then
	echo "$stamp"
	exit 0
fi
if [ "${HAGENT_FORCE:-0}" != 1 ] && [ -f "$out/inputs" ] && [ "$(cat "$out/inputs")" = "$stamp" ] &&
	[ -f "$out/initramfs.cpio.xz" ] && [ -f "$out/vmlinuz" ]; then
	. "$out/sizes"
	say "up to date: $out/initramfs.cpio.xz  cpio $((CPIO_BYTES / 1024)) KiB, xz $((XZ_BYTES / 1024)) KiB"
	exit 0
fi
rm -f "$out/inputs"

# --- staging tree: modules (with their dependencies), board file, rootfs ---
stage=$out/stage
rm -rf "$stage"
mkdir -p "$stage/lib/modules/$kver" "$stage/lib/modules-load.d" "$stage/etc"
# modules.dep: "kernel/x/a.ko: kernel/y/b.ko kernel/z/c.ko"
declare -A depof pathof
while IFS= read -r line; do
	m=${line%%:*}
	n=${m##*/}; n=${n%.ko*}; n=${n//-/_}
	pathof[$n]=$m
	depof[$n]=${line#*:}
done <"$kmods/modules.dep"
load=() files=()
for m in $MODULES; do
	n=${m//-/_}
	if [ -z "${pathof[$n]:-}" ]; then
		if grep -q "/${n}.ko\$\|/${m}.ko\$" "$kmods/modules.builtin"; then
			continue # built into this kernel: nothing to load
		fi
		say "module $m: neither in modules.dep nor built in ($kver); fix MODULES in $conf"
		exit 2
	fi
	load+=("$m")
	files+=("${pathof[$n]}")
	for d in ${depof[$n]}; do files+=("$d"); done
done
for f in $(printf '%s\n' "${files[@]}" | sort -u); do
	mkdir -p "$stage/lib/modules/$kver/$(dirname "$f")"
	cp "$kmods/$f" "$stage/lib/modules/$kver/$f"
done
# depmod reads these if present; empty ones silence its warnings.
touch "$stage/lib/modules/$kver/"modules.{order,builtin,builtin.modinfo}
depmod -b "$stage" "$kver"
# Keep only what u-root's loader reads; the binary indexes are for modprobe.
find "$stage/lib/modules/$kver" -maxdepth 1 -type f ! -name modules.dep -delete
printf '%s\n' "${load[@]}" >"$stage/lib/modules-load.d/hagent.conf"
[ -d rootfs ] && cp -R rootfs/. "$stage/"
cp "$config" "$stage/etc/hagent.toml"
cp "$conf" "$stage/etc/board.conf"
# Extra files for tests and labs (e.g. one config per guest), overlaid last.
[ -n "${HAGENT_EXTRA_FILES:-}" ] && cp -R "$HAGENT_EXTRA_FILES"/. "$stage/"
# Same tree, same archive: fixed modes (u-root zeroes times, owners, inodes
# and sorts the file list).
chmod -R u=rwX,go=rX "$stage"
find "$stage" -name '.gitkeep' -delete

# --- u-root, busybox mode, from inside our module (versions pinned in go.mod) ---
mkdir -p build/tools
if [ ! -x build/tools/u-root ] || [ go.mod -nt build/tools/u-root ]; then
	say "building the u-root tool (pinned in go.mod by firmware/tools.go)"
	"$GO" build -o build/tools/u-root github.com/u-root/u-root
fi
# -go-extra-args come after u-root's own "-ldflags -s -w -buildid=" and so
# replace them: repeat those.
args=(-o "$out/initramfs.cpio" -build bb -tags goshsmall
	-go-extra-args "-ldflags=-s -w -buildid= -X github.com/hagent/hagent/ha/internal/version.Version=$version"
	-initcmd init -uinitcmd hainit -defaultsh gosh -skip-ldd)
for d in "$stage"/*; do
	args+=(-files "$d:${d#"$stage"/}")
done
# u-root keeps its temp dir on failure. It holds Go sources, so it must not
# live inside the module: `go vet ./...` or `go test ./...` running during an
# image build would pick up half a GOPATH of vendored code. Named after the
# output directory (its absolute path, hashed): two builds at once into two
# outputs (the demo's image and a test's, or two checkouts) must not empty
# each other's, and the next build into the same output removes what a
# failed one left.
tmp=${TMPDIR:-/tmp}/hagent-mkimage-$board-$(realpath -m "$out" | cksum | cut -d' ' -f1)
rm -rf "$tmp" && mkdir -p "$tmp"
say "u-root ($GOARCH${GOARM:+ GOARM=$GOARM}${GOMIPS:+ GOMIPS=$GOMIPS}${GOAMD64:+ GOAMD64=$GOAMD64})"
env GOOS=linux GOARCH="$GOARCH" ${GOARM:+GOARM=$GOARM} ${GOMIPS:+GOMIPS=$GOMIPS} ${GOAMD64:+GOAMD64=$GOAMD64} CGO_ENABLED=0 TMPDIR="$tmp" \
	build/tools/u-root "${args[@]}" \
	github.com/u-root/u-root/cmds/core/{init,gosh,ip,ls,cat,dmesg,ps,poweroff,kill,lsmod,echo,sleep,uname} \
	./ha/cmd/hagent ./ha/cmd/hactl ./firmware/cmd/hainit 2>"$out/u-root.log" || {
	cat "$out/u-root.log" >&2
	say "u-root failed"
	exit 1
}
rm -rf "$tmp"
# xz for the kernel: CRC32 check (the kernel's decompressor has no CRC64) and
# single-threaded so the output never depends on the CPU count.
xz -T1 --check=crc32 -9 -c "$out/initramfs.cpio" >"$out/initramfs.cpio.xz.tmp"
mv "$out/initramfs.cpio.xz.tmp" "$out/initramfs.cpio.xz"
cp "$kcache/vmlinuz" "$out/vmlinuz"
cpio_b=$(stat -c %s "$out/initramfs.cpio")
xz_b=$(stat -c %s "$out/initramfs.cpio.xz")
k_b=$(stat -c %s "$out/vmlinuz")
{
	echo "BOARD=$board"
	echo "KERNEL=$kver"
	echo "VERSION=$version"
	echo "CPIO_BYTES=$cpio_b"
	echo "XZ_BYTES=$xz_b"
	echo "KERNEL_BYTES=$k_b"
	echo "SHA256=$(sha256sum "$out/initramfs.cpio.xz" | cut -d' ' -f1)"
} >"$out/sizes"
echo "$stamp" >"$out/inputs"
printf 'mkimage[%s]: %s (version %s)  cpio %d KiB, xz %d KiB (kernel %s %d KiB) sha256 %.16s  %d ms\n' \
	"$board" "$out/initramfs.cpio.xz" "$version" $((cpio_b / 1024)) $((xz_b / 1024)) "$kver" $((k_b / 1024)) \
	"$(sha256sum "$out/initramfs.cpio.xz")" $((($(date +%s%N) - t0) / 1000000)) >&2
