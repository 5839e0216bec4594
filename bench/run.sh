#!/usr/bin/env bash
# Side-by-side benchmarks: glibc, jemalloc, tcmalloc, mimalloc and poolalloc
# running the same source (bench/alloc_bench.c), then poolalloc's build
# geometries against each other.  Writes bench/results/results.md.
#
#   instructions  valgrind --tool=callgrind, per malloc+free pair: the
#                 difference between N and 2N pairs, divided by N, so start-up
#                 costs cancel (the loop itself adds 11 instructions per pair)
#   time          hyperfine, 10 runs after 2 warm-ups: minimum (mean)
#   peak RSS      /usr/bin/time -f %M
. "$(dirname "$0")/common.sh"
others=(glibc jemalloc tcmalloc mimalloc)

# name:cmake-flags for each poolalloc geometry
geometries=(
  "8/4K/256K:-DPOOLALLOC_ALIGNMENT=8 -DPOOLALLOC_POOL_SIZE=4096 -DPOOLALLOC_ARENA_SIZE=262144"
  "16/4K/256K:-DPOOLALLOC_ALIGNMENT=16 -DPOOLALLOC_POOL_SIZE=4096 -DPOOLALLOC_ARENA_SIZE=262144"
  "8/16K/1M:-DPOOLALLOC_ALIGNMENT=8 -DPOOLALLOC_POOL_SIZE=16384 -DPOOLALLOC_ARENA_SIZE=1048576"
  "16/16K/1M:-DPOOLALLOC_ALIGNMENT=16 -DPOOLALLOC_POOL_SIZE=16384 -DPOOLALLOC_ARENA_SIZE=1048576"
)
for entry in "${geometries[@]}"; do
  name=${entry%%:*}
  dir=build-bench-${name//\//-}
  # shellcheck disable=SC2086
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DPOOLALLOC_BUILD_TESTS=OFF ${entry#*:} >/dev/null
  cmake --build "$dir" -j"$(nproc)" --target alloc_bench_libc alloc_bench_pa >/dev/null
done
default_dir=build-bench-8-4K-256K

PAIRS=200000
CHURN=3000000
XTHREAD=3000000
HEAP=1000000

timed_bin() { # name lib bin workload args...
  local name=$1 lib=$2 bin=$3
  shift 3
  timed "$name" env LD_PRELOAD="$lib" "$bin" "$@"
}

table=$out/results.md
{
  machine_line
  echo
  echo "| allocator | instr/pair 16 B | instr/pair 8..512 B | instr/churn op | churn ms min (mean) | xthread ms min (mean) | churn peak RSS KiB | xthread peak RSS KiB |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
} >"$table"

row() { # name lib bin
  local name=$1 lib=$2 bin=$3
  local instr tc tx rc rx
  instr=$(instruction_columns "$lib" "$bin" $PAIRS)
  tc=$(timed_bin "$name-churn" "$lib" "$bin" churn $CHURN)
  tx=$(timed_bin "$name-xthread" "$lib" "$bin" xthread $XTHREAD)
  rc=$(peak_rss_kib "$lib" "$bin" churn $CHURN)
  rx=$(peak_rss_kib "$lib" "$bin" xthread $XTHREAD)
  echo "| $name | $instr | $tc | $tx | $rc | $rx |" | tee -a "$table"
}

for name in "${others[@]}"; do
  row "$name" "${preload[$name]}" "$root/$default_dir/bench/alloc_bench_libc"
done
row poolalloc "" "$root/$default_dir/bench/alloc_bench_pa"

{
  echo
  echo "poolalloc geometries (alignment / pool / arena), heap workload of $HEAP live objects:"
  echo
  echo "| geometry | instr/pair 8..512 B | instr/churn op | churn ms min (mean) | heap: held, over asked | heap peak RSS KiB |"
  echo "|---|---:|---:|---:|---|---:|"
} >>"$table"
for entry in "${geometries[@]}"; do
  name=${entry%%:*}
  bin=$root/build-bench-${name//\//-}/bench/alloc_bench_pa
  imix=$(instructions "" "$bin" pairs $PAIRS 0)
  ichurn=$(instructions "" "$bin" churn $PAIRS)
  tc=$(timed_bin "geometry-${name//\//-}" "" "$bin" churn $CHURN)
  held=$("$bin" heap $HEAP | sed -n 's/.*held \([0-9]*\) in \([0-9]*\) arenas (\([0-9.]*%\) overhead).*/\1 B, +\3/p')
  rss=$(peak_rss_kib "" "$bin" heap $HEAP)
  echo "| $name | $imix | $ichurn | $tc | $held | $rss |" | tee -a "$table"
done

# The layers on top of the domains (POOLALLOC_DEBUG, POOLALLOC_TRACE) on the
# default geometry, against none: what each costs per operation.
LAYER_CHURN=300000
{
  echo
  echo "Layers on the default build (pa_malloc/pa_free; churn of $LAYER_CHURN operations timed):"
  echo
  echo "| layers | instr/pair 8..512 B | instr/churn op | churn ms min (mean) | churn peak RSS KiB |"
  echo "|---|---:|---:|---:|---:|"
} >>"$table"
bin=$root/$default_dir/bench/alloc_bench_pa
with_env() { # "VAR=value ..." function-or-command args...
  local vars=$1
  shift
  # shellcheck disable=SC2086
  (if [ -n "$vars" ]; then export $vars; fi; "$@")
}
for layers in "none:" "debug hooks:POOLALLOC_DEBUG=1" "tracing, 1 frame:POOLALLOC_TRACE=1" \
              "tracing, 16 frames:POOLALLOC_TRACE=16" "debug + tracing 16:POOLALLOC_DEBUG=1 POOLALLOC_TRACE=16"; do
  name=${layers%%:*}
  vars=${layers#*:}
  imix=$(with_env "$vars" instructions "" "$bin" pairs $PAIRS 0)
  ichurn=$(with_env "$vars" instructions "" "$bin" churn $PAIRS)
  tc=$(with_env "$vars" timed "layers-${name//[ ,+]/_}" "$bin" churn $LAYER_CHURN)
  rss=$(with_env "$vars" peak_rss_kib "" "$bin" churn $LAYER_CHURN)
  echo "| $name | $imix | $ichurn | $tc | $rss |" | tee -a "$table"
done
echo
echo "written to $table"
