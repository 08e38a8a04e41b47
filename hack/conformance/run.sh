#!/bin/bash
# Runs the bats files of an already checked-out runc integration suite
# against one runtime binary, one file at a time, and prints a Markdown table
# of passed, failed and skipped tests per file.
#
# Usage: hack/conformance/run.sh SUITE RUNTIME OUTDIR [FILE.bats...]
#   SUITE    the suite's tests/integration directory (helpers.bash, *.bats)
#   RUNTIME  the runtime binary, passed to the suite as $RUNC
#   OUTDIR   receives one FILE.tap per bats file and the temporary
#            directories of the run (removed at the end)
#   FILE     bats files to run, by name; all *.bats files when omitted
#
# Environment: TIMEOUT is the limit for one bats file in seconds (default
# 600). Each file runs under `script` so that terminal tests get a tty.
#
# The script does not fetch or build the suite: testdata/*.tar.xz and the Go
# helpers (recvtty, sd-helper, seccompagent) must already be in place. After
# each file it deletes containers, mounts and cgroups that the file left.
set -uo pipefail

if [ $# -lt 3 ]; then
	sed -n '6,12p' "$0" >&2
	exit 2
fi

suite=$(realpath "$1")
runtime=$(realpath "$2")
outdir=$(realpath -m "$3")
shift 3
timeout_s=${TIMEOUT:-600}

[ -f "$suite/helpers.bash" ] || {
	echo "$suite/helpers.bash not found: SUITE must be tests/integration" >&2
	exit 2
}
[ -x "$runtime" ] || {
	echo "$runtime is not an executable file" >&2
	exit 2
}

if [ $# -eq 0 ]; then
	set -- $(cd "$suite" && ls -- *.bats)
fi

mkdir -p "$outdir/tmp"

# Deletes what a file killed by the timeout may have left: containers in the
# state directories under the run's TMPDIR, mounts below OUTDIR, and the
# cgroups the suite creates.
cleanup_leftovers() {
	local state ct mnt dir
	# A test that freezes a cgroup and times out leaves its processes
	# frozen, so thaw them before deleting containers.
	for dir in /sys/fs/cgroup/freezer/runc-cgroups-integration-test; do
		[ -d "$dir" ] || continue
		find "$dir" -name freezer.state | while read -r f; do
			echo THAWED >"$f"
		done
	done
	for state in "$outdir"/tmp/bats-run-*/runc.*/state; do
		[ -d "$state" ] || continue
		for ct in $("$runtime" --root "$state" list -q 2>/dev/null); do
			"$runtime" --root "$state" delete -f "$ct" >/dev/null 2>&1
		done
	done
	awk '{ print $5 }' /proc/self/mountinfo | grep "^$outdir/" | sort -r |
		while read -r mnt; do
			umount -l "$mnt"
		done
	# Kill what is left in the suite's cgroups (only the suite's
	# containers run there), then remove the directories.
	for dir in /sys/fs/cgroup/*/runc-cgroups-integration-test \
		/sys/fs/cgroup/runc-cgroups-integration-test; do
		[ -d "$dir" ] || continue
		find "$dir" -name cgroup.procs -exec cat {} + | sort -u |
			while read -r pid; do
				kill -KILL "$pid" 2>/dev/null
			done
	done
	sleep 1
	for dir in /sys/fs/cgroup/*/runc-cgroups-integration-test \
		/sys/fs/cgroup/runc-cgroups-integration-test; do
		[ -d "$dir" ] || continue
		find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
	rm -rf "${outdir:?}"/tmp/*
}

for file in "$@"; do
	name=$(basename "$file" .bats)
	start=$(date +%s)
	# `script -e` returns the exit status of bats; the typescript is
	# discarded because the TAP output also goes to stdout.
	(
		cd "$suite" &&
			TMPDIR="$outdir/tmp" RUNC="$runtime" timeout -k 10 "$timeout_s" \
				script -qefc "bats --tap $name.bats" /dev/null </dev/null
	) | tr -d '\r' >"$outdir/$name.tap"
	rc=${PIPESTATUS[0]}
	end=$(date +%s)
	echo "$name: exit $rc in $((end - start))s" >&2
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "# timed out after ${timeout_s}s" >>"$outdir/$name.tap"
	fi
	cleanup_leftovers
done
rmdir "$outdir/tmp" 2>/dev/null

"$(dirname "$0")/table.sh" "$outdir"
