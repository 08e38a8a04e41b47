# Shared cache logic for the fixture builders in this directory.
# Sourced, not executed.

# Cache directory shared by every test run on this machine.
fixtures_dir() {
	printf '%s\n' "${HULL_FIXTURES:-/var/cache/hull-fixtures}"
}

# build_cached DEST BUILDER
#
# Runs `BUILDER TMPDIR` once and renames TMPDIR to DEST. DEST only ever
# appears complete because rename(2) is atomic, so its existence marks a
# finished build. An exclusive flock on DEST.lock makes concurrent callers
# wait for the first build instead of starting their own. Prints DEST.
build_cached() {
	local dest=$1 builder=$2
	dest=$(realpath -m "$dest")
	mkdir -p "$(dirname "$dest")"
	if [ -d "$dest" ]; then
		printf '%s\n' "$dest"
		return 0
	fi
	exec {lock_fd}>"$dest.lock"
	flock "$lock_fd"
	if [ ! -d "$dest" ]; then
		local tmp
		# Leftovers of a build that was killed: no other build runs while
		# this process holds the lock.
		rm -rf --one-file-system "$dest".tmp.*
		tmp=$(mktemp -d "$dest.tmp.XXXXXX")
		# A failed build leaves no partial directory behind.
		if ! "$builder" "$tmp" >&2; then
			rm -rf --one-file-system "$tmp"
			flock -u "$lock_fd"
			exec {lock_fd}>&-
			echo "failed to build $dest" >&2
			return 1
		fi
		chmod 0755 "$tmp"
		mv -T "$tmp" "$dest"
	fi
	flock -u "$lock_fd"
	exec {lock_fd}>&-
	printf '%s\n' "$dest"
}
