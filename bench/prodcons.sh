#!/usr/bin/env bash
# Producer and consumer threads (bench/threads.c prodcons, 10 million
# blocks) past 2 threads, mimalloc against poolalloc, RUNS interleaved
# runs per cell, every time shown sorted.  On 2 cores these times are
# bimodal (a producer and its consumer share a core or use two), so a
# median of a few runs swings; the same runs pinned to one CPU
# (taskset -c 0) measure the work each allocator does, with no line
# crossing cores.  Writes bench/results/prodcons.md.
#
#   bench/prodcons.sh [RUNS]   (default 9)
. "$(dirname "$0")/common.sh"
runs=${1:-9}
preload_bench_setup threads
counts=(4 8 16 64)
pair=(mimalloc poolalloc)

declare -A times
for ((r = 0; r < runs; r++)); do
  for t in "${counts[@]}"; do
    for mode in spread pinned; do
      pin=()
      [ "$mode" = pinned ] && pin=(taskset -c 0)
      for name in "${pair[@]}"; do
        s=$( { /usr/bin/time -f "%e" env LD_PRELOAD="${preload[$name]}" "${pin[@]}" \
                 "$bin" prodcons "$t" 10000000 >/dev/null; } 2>&1 | tail -1)
        times[$mode/$t/$name]+="$s "
      done
    done
  done
done

sorted() { tr ' ' '\n' | grep -v '^$' | sort -n | tr '\n' ' '; }

table=$out/prodcons.md
{
  machine_line
  echo
  echo "bench/prodcons.sh $runs: prodcons, 10000000 blocks; seconds, sorted, of $runs interleaved runs"
  for mode in spread pinned; do
    echo
    [ "$mode" = spread ] && echo "On both cores:" || echo "Pinned to one CPU:"
    echo
    echo "| threads | mimalloc | poolalloc | medians |"
    echo "|---:|---|---|---|"
    for t in "${counts[@]}"; do
      m=${times[$mode/$t/mimalloc]}
      p=${times[$mode/$t/poolalloc]}
      echo "| $t | $(echo "$m" | sorted)| $(echo "$p" | sorted)| $(echo "$m" | median) / $(echo "$p" | median) |"
    done
  done
} | tee "$table"
echo "written to $table"
