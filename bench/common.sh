# Helpers shared by bench/run.sh and bench/python.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
out=bench/results
mkdir -p "$out"

need_packages=()
for pkg in libjemalloc-dev libgoogle-perftools-dev libmimalloc-dev libgc-dev hyperfine time valgrind; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_packages+=("$pkg")
done
if [ ${#need_packages[@]} -gt 0 ]; then
  echo "installing ${need_packages[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi

libdir=/usr/lib/x86_64-linux-gnu
declare -A preload=(
  [glibc]=""
  [jemalloc]="$libdir/libjemalloc.so.2"
  [tcmalloc]="$libdir/libtcmalloc_minimal.so.4"
  [mimalloc]="$libdir/libmimalloc.so.2"
)

peak_rss_kib() { # lib command...
  local lib=$1
  shift
  env LD_PRELOAD="$lib" /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1
}

# "min (mean)" in ms from a hyperfine JSON export: on a shared machine the
# minimum is the figure least disturbed by neighbours.
min_mean_ms() {
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.0f (%.0f)" % (r["min"]*1000, r["mean"]*1000))' "$1"
}

timed() { # name command...: hyperfine, 10 runs after 2 warm-ups
  local name=$1
  shift
  hyperfine -N --warmup 2 --runs 10 --export-json "$out/$name.json" "$*" >/dev/null
  min_mean_ms "$out/$name.json"
}

callgrind_total() { # lib bin args...
  local lib=$1
  shift
  LD_PRELOAD=$lib valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | awk '/Collected/ {print $4}'
}

# instructions per operation: lib bin workload N extra-args; the difference
# between N and 2N operations over N, so start-up and tear-down cancel
instructions() {
  local lib=$1 bin=$2 workload=$3 n=$4 a b
  shift 4
  a=$(callgrind_total "$lib" "$bin" "$workload" "$n" "$@")
  b=$(callgrind_total "$lib" "$bin" "$workload" $((2 * n)) "$@")
  echo $(((b - a) / n))
}

# "i16 | imix | ichurn": instructions per 16-byte pair, per mixed-size pair
# and per churn operation (alloc_bench), the first columns of run.sh's and
# secure.sh's tables.
instruction_columns() { # lib bin pairs
  local lib=$1 bin=$2 pairs=$3
  echo "$(instructions "$lib" "$bin" pairs "$pairs" 16) | $(instructions "$lib" "$bin" pairs "$pairs" 0) | $(instructions "$lib" "$bin" churn "$pairs")"
}

machine_line() {
  echo "Machine: $(nproc) cores, $(uname -m), $(uname -r); $(gcc --version | head -1)"
}

# Builds TARGET (a bench/ program run through LD_PRELOAD) and the override
# library in build-bench; sets bin to the program, preload[poolalloc] to
# the override, and names to the five allocators in table order.
preload_bench_setup() { # target
  cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DPOOLALLOC_BUILD_TESTS=OFF >/dev/null
  cmake --build build-bench -j"$(nproc)" --target "$1" poolalloc-override >/dev/null
  bin=$root/build-bench/bench/$1
  preload[poolalloc]=$root/build-bench/libpoolalloc-override.so
  names=(glibc jemalloc tcmalloc mimalloc poolalloc)
}

# The median of the numbers on standard input, separated by spaces.
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

# thread_table COLUMN PREFIX TIMES RSS COUNT...: a row per COUNT and, for
# each allocator, the medians of ${TIMES[PREFIXCOUNT/name]} and of
# ${RSS[...]} (TIMES and RSS name associative arrays of the caller's).
thread_table() {
  local column=$1 prefix=$2 name count row header rule
  local -n table_times=$3 table_rss=$4
  shift 4
  header="| $column |"
  rule="|---:|"
  for name in "${names[@]}"; do header+=" $name ms | $name KiB |"; rule+="---:|---:|"; done
  echo "$header"
  echo "$rule"
  for count in "$@"; do
    row="| $count |"
    for name in "${names[@]}"; do
      row+=" $(echo "${table_times[$prefix$count/$name]}" | median) | $(echo "${table_rss[$prefix$count/$name]}" | median) |"
    done
    echo "$row"
  done
}
