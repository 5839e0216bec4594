#!/usr/bin/env bash
# Handles (bench/handles_bench.c): the memory a heap holds after a random 90%
# of 1,000,000 objects died, with plain pointers, with handles before
# pa_compact and after it; and the price of the indirection on a read-heavy
# loop, in instructions per read (callgrind, N against 2N reads) and wall
# time (hyperfine).  Writes bench/results/handles.md.
. "$(dirname "$0")/common.sh"

dir=build-bench-handles
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DPOOLALLOC_BUILD_TESTS=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)" --target handles_bench >/dev/null
bin=$root/$dir/bench/handles_bench

OBJECTS=1000000
READS=100000000

table=$out/handles.md
{
  machine_line
  echo
  echo "After a random 90% of $OBJECTS objects (24..512 bytes) died:"
  echo
  echo "| objects reached by | arenas held | held KiB | resident KiB | pa_compact ms | objects moved |"
  echo "|---|---:|---:|---:|---:|---:|"
} >"$table"
for mode in pointers handles compact; do
  line=$("$bin" frag $OBJECTS $mode)
  label=$mode
  [ "$mode" = compact ] && label="handles, after pa_compact"
  [ "$mode" = handles ] && label="handles, before pa_compact"
  [ "$mode" = pointers ] && label="plain pointers (pa_malloc)"
  echo "$line" | sed -n "s/.*arenas held \([0-9]*\) (\([0-9]*\) KiB); resident \([0-9]*\) KiB; compaction \([0-9.]*\) ms, \([0-9]*\) objects moved/| $label | \1 | \2 | \3 | \4 | \5 |/p" |
    tee -a "$table"
done

{
  echo
  echo "Reading 100,000 live objects of 32 bytes in a random order ($READS reads timed):"
  echo
  echo "| objects reached by | instr/read | ms min (mean) |"
  echo "|---|---:|---:|"
} >>"$table"
for mode in pointers handles; do
  i=$(instructions "" "$bin" read 2000000 "$mode")
  t=$(timed "handles-read-$mode" "$bin" read $READS "$mode")
  echo "| $mode | $i | $t |" | tee -a "$table"
done
echo
echo "written to $table"
