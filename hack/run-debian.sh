#!/bin/bash
# Builds hull, makes the Debian bookworm rootfs (once, cached) and runs a
# container from it with `hull run`, printing its output.
#
# Usage (as root): hack/run-debian.sh [COMMAND [ARG...]]
# The default command is `cat /etc/os-release`. HULL picks another binary.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" != 0 ]; then
	echo "hack/run-debian.sh needs root" >&2
	exit 1
fi

if [ -z "${HULL:-}" ]; then
	(cd "$repo" && cargo build --bin hull)
	HULL=${CARGO_TARGET_DIR:-$repo/target}/debug/hull
fi
rootfs=$("$repo/hack/rootfs/debian.sh")

work=$(mktemp -d /tmp/hull-debian.XXXXXX)
id=hull-debian-$$
cleanup() {
	"$HULL" --root "$work/state" delete --force "$id" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/bundle"
"$HULL" spec --bundle "$work/bundle"
if [ $# = 0 ]; then
	set -- cat /etc/os-release
fi
args=$(printf '%s\n' "$@" | jq -R . | jq -s .)
jq --arg root "$rootfs" --argjson args "$args" \
	'.root = {path: $root, readonly: true} | .process.terminal = false | .process.args = $args' \
	"$work/bundle/config.json" >"$work/config.json"
mv "$work/config.json" "$work/bundle/config.json"

"$HULL" --root "$work/state" run --bundle "$work/bundle" "$id"
