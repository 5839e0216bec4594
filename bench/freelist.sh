#!/usr/bin/env bash
# Free lists against the pools they sit on (bench/freelist_bench.c): each
# workload on pa_obj_malloc/pa_obj_free and on a pa_freelist over the same
# domain, instructions per operation (callgrind, N against 2N) and wall time
# (hyperfine).  Writes bench/results/freelist.md.
. "$(dirname "$0")/common.sh"

dir=build-bench-freelist
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DPOOLALLOC_BUILD_TESTS=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)" --target freelist_bench >/dev/null
bin=$root/$dir/bench/freelist_bench

N=100000       # operations counted by callgrind
TIMED=20000000 # operations timed

table=$out/freelist.md
{
  machine_line
  echo
  echo "| workload | instr/op pools | instr/op free list | ms pools min (mean) | ms free list min (mean) |"
  echo "|---|---:|---:|---:|---:|"
} >"$table"

# name workload extra-args: one row, pools against the list
row() {
  local name=$1 workload=$2
  shift 2
  local ip il tp tl
  ip=$(instructions "" "$bin" "$workload" $N pool "$@")
  il=$(instructions "" "$bin" "$workload" $N list "$@")
  tp=$(timed "freelist-$workload-pool$*" "$bin" "$workload" $TIMED pool "$@")
  tl=$(timed "freelist-$workload-list$*" "$bin" "$workload" $TIMED list "$@")
  echo "| $name | $ip | $il | $tp | $tl |" | tee -a "$table"
}

row "pairs, 24 B" pairs 24
row "pairs, 512 B" pairs 512
row "pairs, 2 KiB (medium class)" pairs 2048
row "tuples by length" tuples
row "bursts of 1,000 (keeps 100)" burst
row "made in one thread, freed in another" xthread
echo
echo "written to $table"
