#!/usr/bin/env bash
# The Larson-style server (bench/larson.c) side by side: glibc, jemalloc,
# tcmalloc, mimalloc and poolalloc (the override library), each loaded with
# LD_PRELOAD into the same binary.  Runs are interleaved (one run of each
# allocator per round, ROUNDS rounds) so the VM's noise falls on all alike;
# the table gives the minimum and the median in ms, and the peak RSS of a
# separate run.  Writes bench/results/larson.md.
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
echo
echo "written to $table"
