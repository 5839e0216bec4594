#!/usr/bin/env bash
# Debian's redis-server (linked with jemalloc) on poolalloc: it must start,
# serve redis-benchmark's sets, gets and list pushes and pops over loopback,
# and keep every value redis-cli stores, then shut down cleanly.  The
# override once handed glibc's blocks to jemalloc's malloc_usable_size here
# (the next definition after its own) and the server died at start.
. "$(dirname "$0")/common.sh"
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi
port=$((20000 + $$ % 20000))
cli() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }
POOLALLOC_SHOW_STATS=$work/stats LD_PRELOAD=$preload redis-server --bind 127.0.0.1 --port "$port" \
  --save "" --appendonly no --daemonize no --logfile "$work/redis.log" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  [ "$(cli ping 2>/dev/null)" = PONG ] && break
  kill -0 $server 2>/dev/null || { echo "FAIL: redis-server on poolalloc died at start"; tail -5 "$work/redis.log"; exit 1; }
  sleep 0.1
done
[ "$(cli ping)" = PONG ] || { echo "FAIL: redis-server on poolalloc does not answer"; exit 1; }
redis-benchmark -h 127.0.0.1 -p "$port" -q -n 20000 -c 8 -d 600 -t set,get,lpush,lpop |
  tr '\r' '\n' | grep 'requests per second' | sed 's/^ *//' >"$work/bench.out"
for t in SET GET LPUSH LPOP; do
  grep -q "^$t: .* requests per second" "$work/bench.out" ||
    { echo "FAIL: redis-benchmark's $t did not finish:"; cat "$work/bench.out"; exit 1; }
done
# values of every size class and beyond the pools, read back exactly
for n in 1 15 16 100 511 512 513 4000 100000; do
  value=$(head -c "$n" /dev/zero | tr '\0' x)
  cli set "key:$n" "$value" >/dev/null
  [ "$(cli strlen "key:$n")" = "$n" ] && [ "$(cli get "key:$n")" = "$value" ] ||
    { echo "FAIL: the value of $n bytes did not come back whole"; exit 1; }
done
cli rpush list $(seq 1 2000) >/dev/null
[ "$(cli lrange list 0 -1 | awk '{ sum += $1 } END { print sum }')" = 2001000 ] ||
  { echo "FAIL: a list of 2000 numbers did not come back whole"; exit 1; }
cli shutdown nosave >/dev/null 2>&1 || true
wait $server || { echo "FAIL: redis-server exited with status $?"; exit 1; }
grep -q "ready to exit" "$work/redis.log" || { echo "FAIL: redis-server did not shut down cleanly"; exit 1; }
echo "redis-server: redis-benchmark's set, get, lpush and lpop served, every value read back whole, clean shutdown"
expect_served 10000
