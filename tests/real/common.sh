# Shared by the real-program tests: $1 is libpoolalloc-override.so.
set -euo pipefail
preload=$(realpath "$1") # absolute: programs may change directory
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Runs "$@" on poolalloc; output in $work/on.out and $work/on.err, and the
# statistics every process prints at exit appended to $work/stats.
run_on_poolalloc() {
  local status=0
  POOLALLOC_SHOW_STATS=$work/stats LD_PRELOAD=$preload "$@" >"$work/on.out" 2>"$work/on.err" || status=$?
  if [ $status -ne 0 ]; then
    echo "FAIL: on poolalloc, $* exited with status $status"
    tail -n 30 "$work/on.out" "$work/on.err"
    exit 1
  fi
}

# Proof that poolalloc served the run: the statistics it printed at exit.
served_blocks() {
  awk -F= '/blocks handed out by the pools/ {gsub(/[ ,]/, "", $2); if ($2 + 0 > max) max = $2 + 0} END {print max + 0}' "$work/stats"
}

expect_served() {
  local blocks
  blocks=$(served_blocks)
  if [ "$blocks" -lt "$1" ]; then
    echo "FAIL: poolalloc handed out $blocks blocks, expected at least $1"
    exit 1
  fi
  echo "poolalloc served the run: $(grep -c 'statistics at exit' "$work/stats") processes printed statistics;" \
       "the largest handed out $blocks blocks from the pools"
}
