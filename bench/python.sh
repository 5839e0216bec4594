#!/usr/bin/env bash
# CPython on each allocator, side by side in one run: its own pymalloc
# (PYTHONMALLOC=pymalloc) against PYTHONMALLOC=malloc on glibc, on mimalloc
# and on poolalloc (preloaded; default geometry and 16 KiB pools / 1 MiB
# arenas).  Workloads: bench/python/*.py.  Each workload's runs are
# interleaved, one run of every way per round (ROUNDS rounds), so this
# VM's drift falls on all alike: time in ms as minimum and median, and the
# median peak RSS.  Writes bench/results/python.md.
#
#   bench/python.sh [ROUNDS]   (default 10)
. "$(dirname "$0")/common.sh"
rounds=${1:-10}
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
  echo "Time in ms, minimum (median) of $rounds interleaved rounds:"
  echo
  echo "$header"
  echo "$rule"
} >"$table"

rss_rows=()
for script in bench/python/*.py; do
  name=$(basename "$script" .py)
  declare -A ms=() kib=()
  for ((r = 0; r < rounds; r++)); do
    for way in "${ways[@]}"; do
      label=${way%%:*}
      rest=${way#*:}
      result=$( { /usr/bin/time -f "%e %M" env PYTHONMALLOC="${rest%%:*}" LD_PRELOAD="${rest#*:}" \
                  "$python" "$script" >/dev/null; } 2>&1 | tail -1)
      ms[$label]+="$(echo "$result" | awk '{printf "%d", $1 * 1000}') "
      kib[$label]+="$(echo "$result" | awk '{print $2}') "
    done
  done
  times="| $name |"
  rss="| $name |"
  for way in "${ways[@]}"; do
    label=${way%%:*}
    times+=" $(echo "${ms[$label]}" | tr ' ' '\n' | grep -v '^$' | sort -n |
               awk '{a[NR] = $1} END {printf "%d (%d)", a[1], a[int((NR + 1) / 2)]}') |"
    rss+=" $(echo "${kib[$label]}" | tr ' ' '\n' | grep -v '^$' | sort -n |
             awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}') |"
  done
  echo "$times" | tee -a "$table"
  rss_rows+=("$rss")
done
{
  echo
  echo "Peak RSS in KiB (median):"
  echo
  echo "$header"
  echo "$rule"
  printf '%s\n' "${rss_rows[@]}"
} | tee -a "$table"
echo "written to $table"
