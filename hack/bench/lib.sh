# Helpers shared by the benchmarks in hack/bench: runtime binaries, a
# busybox bundle, the cgroup wrapper, timing and medians, and the record
# in BENCHMARKS.md. Source it after setting `repo`.

if [ "$(id -u)" != 0 ]; then
	echo "the benchmarks need root" >&2
	exit 1
fi

declare -A binary
binary[hull]=${HULL:-$repo/target/release/hull}
binary[runc]=${RUNC:-$(command -v runc || echo /usr/sbin/runc)}
binary[crun]=${CRUN:-$(command -v crun || echo /usr/bin/crun)}

work=$(mktemp -d /tmp/hull-bench.XXXXXX)

# make_bundle DIR ARGS...: a bundle on the busybox fixture running ARGS.
make_bundle() {
	local dir=$1 args
	shift
	local rootfs
	rootfs=$("$repo/hack/rootfs/busybox.sh")
	mkdir -p "$dir"
	(cd "$dir" && "${binary[runc]}" spec)
	args=$(printf '%s\n' "$@" | jq -R . | jq -s .)
	jq --arg root "$rootfs" --argjson args "$args" '.root = {path: $root, readonly: true}
		| .process.terminal = false | .process.args = $args' \
		"$dir/config.json" >"$dir/config.json.new"
	mv "$dir/config.json.new" "$dir/config.json"
}

# run_rt NAME ARGS...: runs runtime NAME with its own --root. Every runtime
# runs in `unshare -m` with /sys/fs/cgroup/unified unmounted: crun 1.8
# rejects hybrid cgroup hierarchies, and running all of them the same way
# keeps the comparison fair.
run_rt() {
	local name=$1
	shift
	unshare -m sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"' sh \
		"${binary[$name]}" --root "$work/state-$name" "$@"
}

# usec START END: microseconds between two $EPOCHREALTIME values.
usec() {
	local a=${1/./} b=${2/./}
	echo $((10#$b - 10#$a))
}

# median FILE COLUMN: median of a column of microseconds, printed in ms.
median() {
	sort -n -k"$2","$2" "$1" | awk -v c="$2" '{ v[NR] = $c }
		END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f", m / 1000 }'
}

# ratio A B: A / B with two decimals, or "-" without B.
ratio() {
	if [ -n "$2" ]; then
		awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
	else
		echo "-"
	fi
}

# machine_lines NAMES...: the record's lines on the machine and binaries.
machine_lines() {
	echo "- Machine: $(nproc) cores, kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
	local name
	for name in "$@"; do
		echo "- $name: \`${binary[$name]#"$repo/"}\`, $("${binary[$name]}" --version 2>/dev/null | head -n1)"
	done
	echo "- Each runtime runs in \`unshare -m\` with /sys/fs/cgroup/unified unmounted (crun 1.8 rejects hybrid cgroups)"
}

# append_record FILE: appends a section to BENCHMARKS.md and prints it.
append_record() {
	local out=$repo/BENCHMARKS.md
	if [ ! -f "$out" ]; then
		printf '# Benchmarks\n\nRecords of `hack/bench/*` runs, newest last.\n' >"$out"
	fi
	cat "$1" >>"$out"
	cat "$1"
}
