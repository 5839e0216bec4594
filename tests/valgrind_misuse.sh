#!/bin/sh
# valgrind_misuse under memcheck: each bug is reported against a pool block.
valgrind=$1
program=$2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$valgrind" --leak-check=full --error-exitcode=42 "$program" >/dev/null 2>"$log"
status=$?
failures=0
expect() {
  if grep -q "$1" "$log"; then echo "seen: $1"; else echo "MISSING: $1"; failures=$((failures + 1)); fi
}
expect "Invalid write of size 1"
expect "is 0 bytes after a block of size 200 alloc'd"
expect "Invalid read of size 1"
expect "is 100 bytes inside a block of size 200 free'd"
expect "definitely lost: 32 bytes in 1 blocks"
[ "$status" -eq 42 ] || { echo "valgrind exit status $status, expected 42"; failures=$((failures + 1)); }
[ "$failures" -eq 0 ] || cat "$log"
echo "$((6 - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
