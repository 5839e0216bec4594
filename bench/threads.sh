#!/usr/bin/env bash
# Threaded workloads (bench/threads.c) side by side: glibc, jemalloc,
# tcmalloc, mimalloc and poolalloc (the override library), each loaded with
# LD_PRELOAD into the same binary, at 1, 2, 4, 8, 16 and 64 threads.  Runs
# are interleaved (every allocator and thread count once per round, ROUNDS
# rounds); each cell is the median time in ms and the median peak RSS of
# the rounds.  Writes bench/results/threads.md.
#
#   bench/threads.sh [ROUNDS]   (default 5)
. "$(dirname "$0")/common.sh"
rounds=${1:-5}
preload_bench_setup threads
counts=(1 2 4 8 16 64)
# malloc+free pairs per run, in all threads together
declare -A ops=([prodcons]=10000000 [private]=50000000 [trees]=20000000 [random]=2000000)
workloads=(prodcons private trees random)

declare -A times rss
for ((r = 0; r < rounds; r++)); do
  for workload in "${workloads[@]}"; do
    for t in "${counts[@]}"; do
      expected=""
      for name in "${names[@]}"; do
        result=$( { /usr/bin/time -f "%e %M" env LD_PRELOAD="${preload[$name]}" \
                     "$bin" "$workload" "$t" "${ops[$workload]}" >"$out/threads.out"; } 2>&1 | tail -1)
        got=$(cat "$out/threads.out")
        [ -z "$expected" ] && expected=$got
        [ "$got" = "$expected" ] || { echo "threads $workload $t on $name: $got, expected $expected" >&2; exit 1; }
        key=$workload/$t/$name
        times[$key]+="$(echo "$result" | awk '{printf "%d", $1 * 1000}') "
        rss[$key]+="$(echo "$result" | awk '{print $2}') "
      done
    done
  done
done

table=$out/threads.md
{
  machine_line
  echo
  echo "bench/threads.sh $rounds: median of $rounds interleaved rounds; ms, then peak RSS KiB"
  for workload in "${workloads[@]}"; do
    echo
    echo "$workload (${ops[$workload]} pairs):"
    echo
    thread_table threads "$workload/" times rss "${counts[@]}"
  done
} | tee "$table"
echo "written to $table"
