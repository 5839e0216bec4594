#!/usr/bin/env bash
# The Larson-style server (bench/larson.c) side by side: glibc, jemalloc,
# tcmalloc, mimalloc and poolalloc (the override library), each loaded with
# LD_PRELOAD into the same binary.  Runs are interleaved (one run of each
# allocator per round, ROUNDS rounds) so the VM's noise falls on all alike;
# the table gives the minimum and the median in ms, and the peak RSS of a
# separate run.  A second table runs the same total work (192 thread lives
# of 20,000 replacements, 5,000 slots per chain) split over 1, 2, 4, 8, 16
# and 64 chains at once: medians of ROUNDS interleaved rounds, time and
# peak RSS of the same run.  Writes bench/results/larson.md.
#
#   bench/larson.sh [ROUNDS]   (default 7)
. "$(dirname "$0")/common.sh"
rounds=${1:-7}
preload_bench_setup larson
# 2 threads at a time, 100 thread lives each, 20,000 replacements per life
# on 5,000 slots: 4 million malloc+free pairs of 8..1000 bytes.
args=(2 100 20000 5000)
expected=$("$bin" "${args[@]}")

declare -A times
for ((r = 0; r < rounds; r++)); do
  for name in "${names[@]}"; do
    got=$(LD_PRELOAD=${preload[$name]} "$bin" "${args[@]}")
    [ "$got" = "$expected" ] || { echo "larson on $name: $got, expected $expected" >&2; exit 1; }
    hyperfine -N --runs 1 --export-json "$out/larson-$name.json" \
      "env LD_PRELOAD=${preload[$name]} $bin ${args[*]}" >/dev/null
    times[$name]+="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["times"][0]*1000)' "$out/larson-$name.json") "
  done
done

table=$out/larson.md
{
  machine_line
  echo
  echo "larson ${args[*]} (threads, lives per chain, replacements per life, slots); $rounds interleaved rounds"
  echo
  echo "| allocator | ms min | ms median | peak RSS KiB |"
  echo "|---|---:|---:|---:|"
} >"$table"
for name in "${names[@]}"; do
  read -r min median < <(python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print("%.0f %.0f" % (min(v), statistics.median(v)))' ${times[$name]})
  rss=$(peak_rss_kib "${preload[$name]}" "$bin" "${args[@]}")
  echo "| $name | $min | $median | $rss |" | tee -a "$table"
done

# The thread-count sweep: 192 lives in all, split over the chains.
counts=(1 2 4 8 16 64)
declare -A sweep_ms sweep_kib
for ((r = 0; r < rounds; r++)); do
  for t in "${counts[@]}"; do
    sweep_args=("$t" $((192 / t)) 20000 5000)
    expected=$("$bin" "${sweep_args[@]}")
    for name in "${names[@]}"; do
      result=$( { /usr/bin/time -f "%e %M" env LD_PRELOAD="${preload[$name]}" \
                  "$bin" "${sweep_args[@]}" >"$out/larson.out"; } 2>&1 | tail -1)
      [ "$(cat "$out/larson.out")" = "$expected" ] || { echo "larson $t on $name: wrong output" >&2; exit 1; }
      sweep_ms[$t/$name]+="$(echo "$result" | awk '{printf "%d", $1 * 1000}') "
      sweep_kib[$t/$name]+="$(echo "$result" | awk '{print $2}') "
    done
  done
done
{
  echo
  echo "larson CHAINS 192/CHAINS 20000 5000: the same 3.84 million replacements at every count;"
  echo "median of $rounds interleaved rounds, ms (10 ms resolution), then peak RSS KiB"
  echo
  thread_table chains "" sweep_ms sweep_kib "${counts[@]}"
} | tee -a "$table"
echo
echo "written to $table"
