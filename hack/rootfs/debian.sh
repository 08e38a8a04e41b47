#!/bin/bash
# Builds a minimal Debian bookworm root filesystem with debootstrap and
# prints its path.
#
# Usage: hack/rootfs/debian.sh [DIR]
# DIR defaults to $HULL_FIXTURES/debian (HULL_FIXTURES defaults to
# /var/cache/hull-fixtures). An existing DIR is reused as it is. The mirror
# is the first bookworm source in apt's configuration, unless DEBIAN_MIRROR
# is set.
set -euo pipefail

here=$(dirname "$(realpath "$0")")
. "$here/lib.sh"

# Prints the URI of the first apt source that serves the suite "bookworm",
# reading both one-line (.list) and deb822 (.sources) files.
find_mirror() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk '$1 == "deb" {
			i = 2
			if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
			if ($(i + 1) == "bookworm") { print $i; exit }
		}' "$f"
	done | head -n1 | grep . && return 0
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		# Paragraphs are separated by blank lines; comments are skipped.
		awk 'BEGIN { RS = ""; FS = "\n" }
		{
			uris = ""; suites = ""; types = ""
			for (i = 1; i <= NF; i++) {
				if ($i ~ /^#/) continue
				if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
				if ($i ~ /^Suites:/) { suites = " " $i " "; sub(/^ Suites:/, "", suites) }
				if ($i ~ /^Types:/) types = $i
			}
			if (types ~ /(^|[ \t])deb([ \t]|$)/ && suites ~ /[ \t]bookworm[ \t]/) {
				split(uris, u, /[ \t]+/); print u[1]; exit
			}
		}' "$f"
	done | head -n1 | grep .
}

build_debian() {
	local root=$1 mirror
	mirror=${DEBIAN_MIRROR:-$(find_mirror)} || {
		echo "no bookworm source found in /etc/apt/sources.list*: set DEBIAN_MIRROR" >&2
		return 1
	}
	echo "debootstrap from $mirror" >&2
	debootstrap --variant=minbase bookworm "$root" "$mirror"
	# Drop the package cache: the fixture is only read.
	rm -rf "$root"/var/cache/apt/archives/*.deb
	# Same test user as the busybox fixture.
	chroot "$root" groupadd -g 1000 hulluser
	chroot "$root" groupadd -g 1001 extra
	chroot "$root" useradd -u 1000 -g 1000 -G extra,audio -m -s /bin/sh hulluser
}

dest=${1:-$(fixtures_dir)/debian}
build_cached "$dest" build_debian
