#!/bin/bash
# Prints Markdown tables from the TAP files that run.sh writes.
#
# Usage: hack/conformance/table.sh DIR [DIR2]
# With one directory: per bats file, the number of tests and how many passed,
# failed and were skipped. With two directories (for example a reference
# runtime first, then the runtime under test): both counts side by side,
# then the tests that pass in DIR and fail in DIR2.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	sed -n '4,8p' "$0" >&2
	exit 2
fi

# Prints "tests passed failed skipped note" for one TAP file. "tests" is the
# plan line; tests that never reported (a timeout) are counted in the note.
count_tap() {
	awk '
		/^1\.\.[0-9]+/ { split($0, a, "\\.\\."); plan = a[2] }
		/^ok [0-9]+/ { if ($0 ~ /# [sS][kK][iI][pP]/) skip++; else pass++ }
		/^not ok [0-9]+/ { fail++ }
		/^# timed out/ { timeout = 1 }
		END {
			note = ""
			missing = plan - pass - fail - skip
			if (timeout) note = "timeout"
			if (missing > 0) note = note (note ? ", " : "") missing " not run"
			printf "%d %d %d %d %s\n", plan, pass, fail, skip, note
		}' "$1"
}

# Prints "RESULT<TAB>NAME" for each test of a TAP file, RESULT being
# passed, failed or skipped.
test_results() {
	sed -nE \
		-e 's/^not ok [0-9]+ (.*)$/failed\t\1/p' \
		-e 's/^ok [0-9]+ (.*) # [sS][kK][iI][pP].*$/skipped\t\1/p' \
		-e '/# [sS][kK][iI][pP]/!s/^ok [0-9]+ (.*)$/passed\t\1/p' "$1"
}

first=$1
second=${2:-}

if [ -z "$second" ]; then
	echo "| file | tests | passed | failed | skipped | note |"
	echo "|---|---:|---:|---:|---:|---|"
	total=(0 0 0 0)
	for tap in "$first"/*.tap; do
		read -r n p f s note < <(count_tap "$tap")
		echo "| $(basename "$tap" .tap) | $n | $p | $f | $s | $note |"
		total=($((total[0] + n)) $((total[1] + p)) $((total[2] + f)) $((total[3] + s)))
	done
	echo "| **total** | ${total[0]} | ${total[1]} | ${total[2]} | ${total[3]} | |"
	exit 0
fi

a=$(basename "$first")
b=$(basename "$second")
echo "| file | tests | $a passed | $a failed | $a skipped | $b passed | $b failed | $b skipped | note |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
total=(0 0 0 0 0 0 0)
for tap in "$first"/*.tap; do
	name=$(basename "$tap" .tap)
	read -r n p f s note_a < <(count_tap "$tap")
	if [ -f "$second/$name.tap" ]; then
		read -r _ p2 f2 s2 note_b < <(count_tap "$second/$name.tap")
	else
		p2=0 f2=0 s2=0 note_b="not run"
	fi
	note=""
	[ -n "$note_a" ] && note="$a: $note_a"
	[ -n "$note_b" ] && note="${note:+$note; }$b: $note_b"
	echo "| $name | $n | $p | $f | $s | $p2 | $f2 | $s2 | $note |"
	total=($((total[0] + n)) $((total[1] + p)) $((total[2] + f)) $((total[3] + s))
		$((total[4] + p2)) $((total[5] + f2)) $((total[6] + s2)))
done
echo "| **total** | ${total[0]} | ${total[1]} | ${total[2]} | ${total[3]} | ${total[4]} | ${total[5]} | ${total[6]} | |"

echo
echo "Tests that pass with $a and do not pass with $b:"
echo
for tap in "$first"/*.tap; do
	name=$(basename "$tap" .tap)
	[ -f "$second/$name.tap" ] || continue
	# Join on the test name; a test missing from DIR2 did not run there.
	join -t $'\t' -1 2 -2 2 -a 1 -e "not run" -o 0,1.1,2.1 \
		<(test_results "$tap" | sort -t $'\t' -k 2) \
		<(test_results "$second/$name.tap" | sort -t $'\t' -k 2) |
		awk -F '\t' -v file="$name" '$2 == "passed" && $3 != "passed" {
			print "- " file ": " $1 " (" $3 ")"
		}'
done
