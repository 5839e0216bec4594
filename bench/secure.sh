#!/usr/bin/env bash
# What secure mode (-DPOOLALLOC_SECURE=ON) costs: the same benchmark source
# (bench/alloc_bench.c) on poolalloc built plainly and built secure, with
# glibc (whose free lists are always safe-linked) beside them; then CPython
# on each override.  Writes bench/results/secure.md.
. "$(dirname "$0")/common.sh"

for variant in plain secure; do
  flag=OFF
  [ $variant = secure ] && flag=ON
  cmake -S . -B build-bench-$variant -DCMAKE_BUILD_TYPE=Release -DPOOLALLOC_BUILD_TESTS=OFF \
        -DPOOLALLOC_SECURE=$flag >/dev/null
  cmake --build build-bench-$variant -j"$(nproc)" \
        --target alloc_bench_libc alloc_bench_pa poolalloc-override >/dev/null
done

PAIRS=200000
CHURN=3000000
XTHREAD=3000000
HEAP=1000000
table=$out/secure.md
{
  machine_line
  echo
  echo "| allocator | instr/pair 16 B | instr/pair 8..512 B | instr/churn op | churn ms min (mean) | xthread ms min (mean) | heap peak RSS KiB |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
} >"$table"
row() { # name lib bin
  local name=$1 lib=$2 bin=$3
  local instr tc tx rh
  instr=$(instruction_columns "$lib" "$bin" $PAIRS)
  tc=$(timed "secure-$name-churn" env LD_PRELOAD="$lib" "$bin" churn $CHURN)
  tx=$(timed "secure-$name-xthread" env LD_PRELOAD="$lib" "$bin" xthread $XTHREAD)
  rh=$(peak_rss_kib "$lib" "$bin" heap $HEAP)
  echo "| $name | $instr | $tc | $tx | $rh |" | tee -a "$table"
}
row glibc "" "$root/build-bench-plain/bench/alloc_bench_libc"
row poolalloc "" "$root/build-bench-plain/bench/alloc_bench_pa"
row "poolalloc secure" "" "$root/build-bench-secure/bench/alloc_bench_pa"

# CPython on each override (PYTHONMALLOC=malloc): bench/python's workloads.
python=$(python3 -c 'import sys; print(sys.executable)')
{
  echo
  echo "CPython $("$python" -c 'import platform; print(platform.python_version())') with PYTHONMALLOC=malloc, ms min (mean) and peak RSS KiB:"
  echo
  echo "| workload | poolalloc | poolalloc secure | peak RSS plain | peak RSS secure |"
  echo "|---|---:|---:|---:|---:|"
} >>"$table"
for workload in object_trees dicts strings; do
  script=bench/python/$workload.py
  cells=() rss=()
  for variant in plain secure; do
    lib=$root/build-bench-$variant/libpoolalloc-override.so
    cells+=("$(timed "secure-python-$workload-$variant" env PYTHONMALLOC=malloc LD_PRELOAD="$lib" "$python" "$script")")
    rss+=("$(PYTHONMALLOC=malloc peak_rss_kib "$lib" "$python" "$script")")
  done
  echo "| $workload | ${cells[0]} | ${cells[1]} | ${rss[0]} | ${rss[1]} |" | tee -a "$table"
done
echo
echo "written to $table"
