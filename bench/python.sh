#!/usr/bin/env bash
# CPython on each allocator, side by side in one run: its own pymalloc
# (PYTHONMALLOC=pymalloc) against PYTHONMALLOC=malloc on glibc, on mimalloc
# and on poolalloc (preloaded; default geometry and 16 KiB pools / 1 MiB
# arenas).  Workloads: bench/python/*.py.  Writes bench/results/python.md.
. "$(dirname "$0")/common.sh"
python=$(python3 -c 'import sys; print(sys.executable)')

for geometry in "256K:-DPOOLALLOC_POOL_SIZE=4096 -DPOOLALLOC_ARENA_SIZE=262144" \
                "1M:-DPOOLALLOC_POOL_SIZE=16384 -DPOOLALLOC_ARENA_SIZE=1048576"; do
  # shellcheck disable=SC2086
  cmake -S . -B "build-bench-python-${geometry%%:*}" -DCMAKE_BUILD_TYPE=Release \
        -DPOOLALLOC_BUILD_TESTS=OFF ${geometry#*:} >/dev/null
  cmake --build "build-bench-python-${geometry%%:*}" -j"$(nproc)" --target poolalloc-override >/dev/null
done
poolalloc=$root/build-bench-python-256K/libpoolalloc-override.so
poolalloc_1m=$root/build-bench-python-1M/libpoolalloc-override.so

# label:PYTHONMALLOC:preload
ways=("pymalloc:pymalloc:" "glibc:malloc:" "mimalloc:malloc:${preload[mimalloc]}"
      "poolalloc:malloc:$poolalloc" "poolalloc 16K/1M:malloc:$poolalloc_1m")

table=$out/python.md
{
  machine_line
  echo "Python: $("$python" --version 2>&1)"
  echo
  header="| workload |"
  rule="|---|"
  for way in "${ways[@]}"; do header+=" ${way%%:*} |"; rule+="---:|"; done
  echo "Time in ms, minimum of 10 runs (mean):"
  echo
  echo "$header"
  echo "$rule"
} >"$table"

rss_rows=()
for script in bench/python/*.py; do
  name=$(basename "$script" .py)
  times="| $name |"
  rss="| $name |"
  for way in "${ways[@]}"; do
    label=${way%%:*}
    rest=${way#*:}
    mode=${rest%%:*}
    lib=${rest#*:}
    times+=" $(timed "python-$name-${label//[ \/]/-}" env PYTHONMALLOC="$mode" LD_PRELOAD="$lib" "$python" "$script") |"
    rss+=" $(PYTHONMALLOC=$mode peak_rss_kib "$lib" "$python" "$script") |"
  done
  echo "$times" | tee -a "$table"
  rss_rows+=("$rss")
done
{
  echo
  echo "Peak RSS in KiB:"
  echo
  echo "$header"
  echo "$rule"
  printf '%s\n' "${rss_rows[@]}"
} | tee -a "$table"
echo "written to $table"
