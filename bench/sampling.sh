#!/usr/bin/env bash
# What `poolalloc run` costs the program it runs: CPython workloads on the
# override (PYTHONMALLOC=malloc), bare and under `poolalloc run` with
# --stats, with --map at the default sampling interval (50 ms) and at 10 ms.
# Wall time by hyperfine, side by side in one run.  Writes
# bench/results/sampling.md.
. "$(dirname "$0")/common.sh"
python=$(python3 -c 'import sys; print(sys.executable)')

cmake -S . -B build-bench-sampling -DCMAKE_BUILD_TYPE=Release -DPOOLALLOC_BUILD_TESTS=OFF >/dev/null
cmake --build build-bench-sampling -j"$(nproc)" --target poolalloc-command poolalloc-override >/dev/null
library=$root/build-bench-sampling/libpoolalloc-override.so
command=$root/build-bench-sampling/poolalloc
map=$(mktemp -d)/map.html

# label|prefix before the python command
ways=("on the override|env LD_PRELOAD=$library"
      "run --stats|$command run --stats --"
      "run --map (50 ms)|$command run --map $map --"
      "run --map --sample 10|$command run --map $map --sample 10 --")

table=$out/sampling.md
{
  machine_line
  echo "Python: $("$python" --version 2>&1)"
  echo
  echo "Time in ms, minimum of 10 runs (mean); in brackets, the minimum against the bare run:"
  echo
  header="| workload |"
  rule="|---|"
  for way in "${ways[@]}"; do header+=" ${way%%|*} |"; rule+="---:|"; done
  echo "$header"
  echo "$rule"
} >"$table"

for script in bench/python/object_trees.py bench/python/big_heap.py examples/workload.py; do
  name=$(basename "$script" .py)
  row="| $name |"
  base=""
  for way in "${ways[@]}"; do
    label=${way%%|*}
    prefix=${way#*|}
    # shellcheck disable=SC2086
    result=$(PYTHONMALLOC=malloc timed "sampling-$name-${label//[^a-z0-9]/-}" $prefix "$python" "$script")
    min=${result%% *}
    if [ -z "$base" ]; then
      base=$min
      row+=" $result |"
    else
      row+=" $result [$(python3 -c "print('%+.1f%%' % (100.0 * ($min - $base) / $base))")] |"
    fi
  done
  echo "$row" | tee -a "$table"
done
echo "written to $table"
