#!/usr/bin/env bash
# Automatic memory side by side (bench/gc_bench.c): poolalloc's reference
# counts and cycle collector, the Boehm-Demers-Weiser collector, CPython's
# algorithm written inline for the benchmark's one type (bench/gc_inline.h:
# the algorithm's own cost, with no library around it), and manual
# pa_malloc/pa_free, on binary-trees and on rings of nodes (cycles), each
# output checked against the manual variant's, and both counting
# collectors' heaps checked empty once their last garbage is collected (an
# untimed run: timed runs leave the garbage at exit, as Boehm's do).  Time
# with hyperfine, peak RSS with /usr/bin/time.  Writes bench/results/gc.md.
. "$(dirname "$0")/common.sh"
cmake -S . -B build-bench-gc -DCMAKE_BUILD_TYPE=Release -DPOOLALLOC_BUILD_TESTS=OFF >/dev/null
cmake --build build-bench-gc -j"$(nproc)" --target gc_bench_pa_gc gc_bench_inline gc_bench_manual gc_bench_boehm >/dev/null
bin=$root/build-bench-gc/bench
table=$out/gc.md
{
  machine_line
  echo
  echo "| workload | poolalloc gc ms | Boehm GC ms | inlined algorithm ms | manual pa_free ms | poolalloc gc peak RSS KiB | Boehm peak RSS KiB | inlined peak RSS KiB | manual peak RSS KiB |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$table"
# Each workload at two sizes of live heap: a small one, and one 4 to 16
# times larger (Boehm's collector walks the whole live heap each time).
for workload in "trees 16" "trees 18" "graphs 1000000" "graphs 1000000 65536"; do
  times=() rss=()
  # shellcheck disable=SC2086
  expected=$("$bin/gc_bench_manual" $workload 2>/dev/null)
  # shellcheck disable=SC2086
  for variant in pa_gc inline; do
    # shellcheck disable=SC2086
    left=$(GC_BENCH_STATS=1 "$bin/gc_bench_$variant" $workload 2>&1 >/dev/null | head -1)
    case $left in
      "$variant: 0 objects left"*) ;;
      *) echo "gc_bench_$variant $workload: not everything was freed: $left" >&2; exit 1 ;;
    esac
  done
  for variant in pa_gc boehm inline manual; do
    # shellcheck disable=SC2086
    if [ "$("$bin/gc_bench_$variant" $workload 2>/dev/null)" != "$expected" ]; then
      echo "gc_bench_$variant $workload: output differs from the manual variant's" >&2
      exit 1
    fi
    # shellcheck disable=SC2086
    times+=("$(timed "gc-${workload%% *}-$variant" "$bin/gc_bench_$variant" $workload)")
    # shellcheck disable=SC2086
    rss+=("$(peak_rss_kib "" "$bin/gc_bench_$variant" $workload)")
  done
  echo "| $workload | ${times[0]} | ${times[1]} | ${times[2]} | ${times[3]} | ${rss[0]} | ${rss[1]} | ${rss[2]} | ${rss[3]} |" | tee -a "$table"
done
echo
echo "written to $table"
