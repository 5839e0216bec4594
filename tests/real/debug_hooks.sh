#!/usr/bin/env bash
# The debug hooks and tracing through the override: $1 is
# libpoolalloc-override.so, $2 the override_debug program.  A fault in a
# program that calls plain malloc is reported; real programs nobody here
# wrote run under the hooks with no report; POOLALLOC_TRACE names the
# function that leaked.
. "$(dirname "$0")/common.sh"
program=$2

expect_report() { # mode, then the words the report must hold
  local mode=$1 status=0
  shift
  POOLALLOC_DEBUG=1 LD_PRELOAD=$preload "$program" "$mode" 2>"$work/err" || status=$?
  if [ $status -ne 134 ]; then
    echo "FAIL: $mode exited with $status, expected 134 (abort)"; cat "$work/err"; exit 1
  fi
  for words in "$@"; do
    grep -qF -- "$words" "$work/err" || { echo "FAIL: $mode: no \"$words\" in:"; cat "$work/err"; exit 1; }
  done
  echo "$mode: reported and aborted"
}
expect_report overflow "buffer overflow" "24 bytes requested" "trailing guard at"
expect_report use_after_free "use after free" "is 0x58, not 0xdd"

expect_clean() { # runs "$@" under the hooks: status 0 and no report
  local status=0
  PYTHONMALLOC=malloc POOLALLOC_DEBUG=1 LD_PRELOAD=$preload "$@" >"$work/out" 2>"$work/err" || status=$?
  if [ $status -ne 0 ] || grep -q "poolalloc: debug" "$work/err"; then
    echo "FAIL: under the debug hooks, $* exited with $status:"; tail -n 20 "$work/err"; exit 1
  fi
}
expect_clean "$program" cross_free
command -v sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq sqlite3 >/dev/null; }
expect_clean sqlite3 "$work/t.db" "CREATE TABLE t(a, b);
  WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000)
  INSERT INTO t SELECT x, printf('%d-%s', x, hex(randomblob(x % 40))) FROM c;
  CREATE INDEX tb ON t(b); SELECT count(*), sum(a) FROM t;"
[ "$(cat "$work/out")" = "20000|200010000" ] || { echo "FAIL: sqlite3 printed $(cat "$work/out")"; exit 1; }
expect_clean perl -e 'my %h; $h{$_} = [($_) x 5] for 1..50000; my $s = 0; $s += $h{$_}[4] for keys %h; print "$s\n"'
[ "$(cat "$work/out")" = "1250025000" ] || { echo "FAIL: perl printed $(cat "$work/out")"; exit 1; }
expect_clean python3 -c 'import json; d = [{"k": i, "v": str(i) * 3} for i in range(50000)]; print(len(json.loads(json.dumps(d))))'
[ "$(cat "$work/out")" = "50000" ] || { echo "FAIL: python3 printed $(cat "$work/out")"; exit 1; }
echo "sqlite3, perl and python3 ran under the debug hooks with no report"

POOLALLOC_TRACE=3 LD_PRELOAD=$preload "$program" leak 2>"$work/err"
grep -q "240 bytes in 5 blocks" "$work/err" && grep -q " leaky_function+0x" "$work/err" ||
  { echo "FAIL: no leak report naming leaky_function:"; cat "$work/err"; exit 1; }
echo "POOLALLOC_TRACE named the leaking function"
