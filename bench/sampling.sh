#!/usr/bin/env bash
# What `poolalloc run` costs the program it runs: CPython workloads on the
# override (PYTHONMALLOC=malloc), bare and under `poolalloc run` with
# --stats and with --map, side by side in one run (wall time by hyperfine),
# and the CPU time sampling takes at the default interval (50 ms) and at
# 10 ms.  Writes bench/results/sampling.md.
. "$(dirname "$0")/common.sh"
python=$(python3 -c 'import sys; print(sys.executable)')

cmake -S . -B build-bench-sampling -DCMAKE_BUILD_TYPE=Release -DPOOLALLOC_BUILD_TESTS=OFF >/dev/null
cmake --build build-bench-sampling -j"$(nproc)" --target poolalloc-command poolalloc-override >/dev/null
library=$root/build-bench-sampling/libpoolalloc-override.so
command=$root/build-bench-sampling/poolalloc
map=$(mktemp -d)/map.html

# The sampler's CPU time as `poolalloc run` reports it (the sampling thread
# and the exit snapshot, against the program's whole CPU time): the median
# of three runs.  Unlike wall time on this shared VM, it is not drowned by
# the machine's drift.
sampling_cost() { # sample-ms script
  for _ in 1 2 3; do
    PYTHONMALLOC=malloc "$command" run --map "$map" --sample "$1" -- "$python" "$2" 2>&1 >/dev/null |
      sed -n 's/.*used \([0-9.]*\) ms of CPU time, \([0-9.]*\)% of the program.s \([0-9]*\) ms/\2 \1 \3/p'
  done | sort -n | sed -n 2p | awk '{printf "%.1f%% (%.0f of %.0f ms)", $1, $2, $3}'
}

table=$out/sampling.md
{
  machine_line
  echo "Python: $("$python" --version 2>&1)"
  echo
  echo "Wall time in ms, minimum of 10 runs (mean), and the CPU time that sampling and the"
  echo "exit snapshot took, as a share of the program's CPU time (median of 3 runs):"
  echo
  echo "| workload | on the override | run --stats | run --map (50 ms) | sampling CPU, 50 ms | sampling CPU, 10 ms |"
  echo "|---|---:|---:|---:|---:|---:|"
} >"$table"

for script in bench/python/object_trees.py bench/python/big_heap.py examples/workload.py; do
  name=$(basename "$script" .py)
  row="| $name |"
  row+=" $(PYTHONMALLOC=malloc timed "sampling-$name-bare" env LD_PRELOAD="$library" "$python" "$script") |"
  row+=" $(PYTHONMALLOC=malloc timed "sampling-$name-stats" "$command" run --stats -- "$python" "$script") |"
  row+=" $(PYTHONMALLOC=malloc timed "sampling-$name-map" "$command" run --map "$map" -- "$python" "$script") |"
  row+=" $(sampling_cost 50 "$script") | $(sampling_cost 10 "$script") |"
  echo "$row" | tee -a "$table"
done
echo "written to $table"
