#!/bin/bash
# Builds a busybox root filesystem from Debian's busybox-static and prints
# its path.
#
# Usage: hack/rootfs/busybox.sh [DIR]
# DIR defaults to $HULL_FIXTURES/busybox (HULL_FIXTURES defaults to
# /var/cache/hull-fixtures). An existing DIR is reused as it is.
set -euo pipefail

here=$(dirname "$(realpath "$0")")
. "$here/lib.sh"

busybox_bin=${BUSYBOX:-/bin/busybox}

build_busybox() {
	local root=$1
	if ! file -L "$busybox_bin" 2>/dev/null | grep -q 'statically linked'; then
		if ! ldd "$busybox_bin" 2>&1 | grep -q 'not a dynamic executable'; then
			echo "$busybox_bin is not statically linked: install busybox-static" >&2
			return 1
		fi
	fi
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,home/hulluser,tmp,proc,sys,dev,run,mnt,var/tmp}
	chmod 1777 "$root/tmp" "$root/var/tmp"
	chmod 0700 "$root/root"
	cp "$busybox_bin" "$root/bin/busybox"
	chmod 0755 "$root/bin/busybox"
	# Hard links, not symlinks: a symlink to /bin/busybox resolved through
	# the host path would let a chmod in a test reach the host's busybox.
	chroot "$root" /bin/busybox --install /bin
	cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
hulluser:x:1000:1000:hull test user:/home/hulluser:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
	cat >"$root/etc/group" <<'GROUP'
root:x:0:
wheel:x:10:hulluser
audio:x:29:hulluser
hulluser:x:1000:
extra:x:1001:hulluser
nogroup:x:65534:
GROUP
	echo 'hull' >"$root/etc/hostname"
	: >"$root/etc/hosts"
	: >"$root/etc/resolv.conf"
	chown 1000:1000 "$root/home/hulluser"
}

dest=${1:-$(fixtures_dir)/busybox}
build_cached "$dest" build_busybox
