#!/bin/bash
# Runs a container of the Debian bookworm image through hull's image
# service and prints its output.
#
# It builds the workspace and makes the Debian rootfs fixture and an OCI
# image layout of it (both cached). It pushes the layout with skopeo to a
# private docker-registry on a free loopback port and pulls it with hullctl
# through a private hull-imaged. Then `hullctl run --rm` runs the command
# in a container of the image, through containerd-shim-hull-v2 and hull.
# Everything started here is stopped and removed on exit, also on failure.
#
# Usage (as root): hack/run-debian.sh [COMMAND [ARG...]]
# The default command is `cat /etc/os-release`. HULL, HULLCTL,
# HULL_IMAGED and HULL_SHIM pick other binaries; the workspace is built
# unless all four are set.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/hack/rootfs/lib.sh"

if [ "$(id -u)" != 0 ]; then
	echo "hack/run-debian.sh needs root" >&2
	exit 1
fi
for tool in docker-registry skopeo umoci curl python3; do
	if ! command -v "$tool" >/dev/null; then
		echo "hack/run-debian.sh: $tool is missing: run hack/deps.sh" >&2
		exit 1
	fi
done

# Prints a progress line to stderr with the seconds since the start.
start_us=${EPOCHREALTIME/./}
step() {
	local tenths=$(((${EPOCHREALTIME/./} - start_us) / 100000))
	printf 'run-debian: [%d.%d s] %s\n' $((tenths / 10)) $((tenths % 10)) "$*" >&2
}

if [ -z "${HULL:-}" ] || [ -z "${HULLCTL:-}" ] || [ -z "${HULL_IMAGED:-}" ] || [ -z "${HULL_SHIM:-}" ]; then
	step "building the workspace"
	(cd "$repo" && cargo build --workspace --quiet)
fi
bin=${CARGO_TARGET_DIR:-$repo/target}/debug
HULL=${HULL:-$bin/hull}
# hullctl finds the runtime and the shim through these.
export HULL_RUNTIME=$HULL
export HULL_SHIM=${HULL_SHIM:-$bin/containerd-shim-hull-v2}
HULLCTL=${HULLCTL:-$bin/hullctl}
HULL_IMAGED=${HULL_IMAGED:-$bin/hull-imaged}

step "making the Debian rootfs fixture"
rootfs=$("$repo/hack/rootfs/debian.sh")

# The layout is keyed by a digest of the rootfs's file list with sizes,
# times, modes and owners, so that a rebuilt or changed rootfs gets a new
# layout.
rootfs_key() {
	(cd "$1" && find . -printf '%p %y %s %T@ %m %U %G %l\n' | LC_ALL=C sort | sha256sum | cut -c1-16)
}

# Packs $rootfs into an OCI layout at $1 tagged "bookworm", with the Cmd
# and PATH of Docker's debian image.
build_layout() {
	local layout=$1 unpacked
	unpacked=$(mktemp -d /tmp/hull-debian-layout.XXXXXX)
	# build_cached passes an empty directory, and umoci init creates its own.
	rmdir "$layout"
	umoci init --layout "$layout"
	umoci new --image "$layout:bookworm"
	umoci unpack --image "$layout:bookworm" "$unpacked/bundle" >/dev/null
	cp -a "$rootfs/." "$unpacked/bundle/rootfs"
	umoci repack --image "$layout:bookworm" "$unpacked/bundle"
	rm -rf --one-file-system "$unpacked"
	umoci config --image "$layout:bookworm" --config.cmd=bash \
		--config.env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	umoci gc --layout "$layout"
}

key=$(rootfs_key "$rootfs")
layout_dir=$(fixtures_dir)/debian-oci-$key
if [ ! -d "$layout_dir" ]; then
	step "packing $rootfs into $layout_dir"
fi
layout=$(build_cached "$layout_dir" build_layout)
# Layouts of earlier versions of the rootfs are never used again.
for old in "$(dirname "$layout")"/debian-oci-*; do
	case $old in
	"$layout"*) ;;
	*.lock) rm -f "$old" ;;
	*) rm -rf --one-file-system "$old" ;;
	esac
done

work=$(mktemp -d /tmp/hull-debian.XXXXXX)
# The store, the registry and the container live on a private tmpfs because
# they are thrown away at exit. Deleting the ~6700 files of an unpacked
# Debian from disk took 20 s on a loaded 2-core VM, and unmounting a tmpfs
# takes no time. The image needs about 300 MB there.
mount -t tmpfs -o size=2g,mode=0700 hull-debian "$work"
registry_pid=
imaged_pid=

# Stops a child of this shell by its pid with SIGTERM, or SIGKILL after
# 10 s, and reaps it.
stop() {
	local pid=$1 timer
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	(sleep 10 && kill -KILL "$pid" 2>/dev/null) &
	timer=$!
	wait "$pid" 2>/dev/null || true
	kill "$timer" 2>/dev/null || true
	wait "$timer" 2>/dev/null || true
}

cleanup() {
	for container in $(hullctl ps -aq 2>/dev/null); do
		hullctl rm -f "$container" >/dev/null 2>&1 || true
	done
	stop "$imaged_pid"
	stop "$registry_pid"
	if grep -q " $work/" /proc/self/mountinfo; then
		echo "hack/run-debian.sh: mounts remain below $work, so it is kept" >&2
	else
		umount "$work" && rmdir "$work"
	fi
	step "done"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
EOF
step "starting docker-registry on 127.0.0.1:$port"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!

step "starting hull-imaged with root $work/root"
"$HULL_IMAGED" --root "$work/root" --address "$work/imaged.sock" >"$work/imaged.log" 2>&1 &
imaged_pid=$!

wait_for() {
	local what=$1 log=$2
	shift 2
	for _ in $(seq 200); do
		if "$@"; then
			return 0
		fi
		sleep 0.1
	done
	echo "hack/run-debian.sh: $what did not start within 20 s, its log:" >&2
	cat "$log" >&2
	exit 1
}
wait_for docker-registry "$work/registry.log" curl -sf -o /dev/null "http://127.0.0.1:$port/v2/"
wait_for hull-imaged "$work/imaged.log" test -S "$work/imaged.sock"

reference=127.0.0.1:$port/library/debian:bookworm
hullctl() {
	"$HULLCTL" --root "$work/root" --run-root "$work/run" --address "$work/imaged.sock" "$@"
}

step "pushing $layout to $reference"
skopeo copy --quiet --dest-tls-verify=false "oci:$layout:bookworm" "docker://$reference"
step "pulling $reference"
hullctl pull --quiet "$reference" >/dev/null
if [ $# = 0 ]; then
	set -- cat /etc/os-release
fi
step "running $* in a container of $reference"
status=0
hullctl run --rm --network none "$reference" "$@" || status=$?
step "container exited with status $status, cleaning up"
exit "$status"
