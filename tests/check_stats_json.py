#!/usr/bin/env python3
"""Runs `test_stats json DIR N` and checks its two JSON documents against the
schema in docs/stats.md and against the known sequence: N blocks of 15 bytes
live in the 16-byte class."""
import json
import math
import subprocess
import sys
import tempfile

N = 2500


def fail(message):
    print("FAIL:", message)
    sys.exit(1)


def expect(cond, message):
    if not cond:
        fail(message)


def check_stats(stats):
    for key in ("geometry", "arenas", "pools", "bytes", "raw", "domains", "freelists", "classes",
                "heaps", "small_allocations", "small_frees", "heaps_abandoned", "radix_leaves"):
        expect(key in stats, f"stats lacks {key}")
    geo = stats["geometry"]
    cap = geo["pool_size"] // 16
    cls = {c["block_size"]: c for c in stats["classes"]}
    expect(16 in cls, "no 16-byte class in use")
    expect(cls[16]["blocks_in_use"] == N, f"16-byte blocks in use {cls[16]['blocks_in_use']} != {N}")
    expect(cls[16]["pools"] == math.ceil(N / cap), "16-byte pools")
    expect(cls[16]["blocks_available"] == math.ceil(N / cap) * cap - N, "16-byte available")
    b = stats["bytes"]
    total = b["in_use"] + b["available"] + b["empty_pools"] + b["quantization"]
    expect(total == stats["arenas"]["current"] * geo["arena_size"], "bytes do not add up")
    expect(b["rounding"] == 0 and b["rounding_blocks"] == 0, "rounding is unknown untraced")
    expect(stats["freelists"] == {"lists": 0, "hits": 0, "misses": 0, "overflows": 0, "kept": 0,
                                  "bytes_kept": 0, "each": []}, "no free lists")
    expect(set(stats["domains"]) == {"raw", "mem", "obj"}, "domains")
    expect(stats["domains"]["mem"]["small_allocations"] == N, "mem traffic")
    expect(stats["small_allocations"] == N and stats["small_frees"] == 0, "pool traffic")
    expect(len(stats["heaps"]) == 1 and stats["heaps"][0]["id"] == 1, "one heap")
    expect(stats["heaps"][0]["handles"] is False, "a thread's heap")
    expect(stats["heaps"][0]["bytes_in_use"] == N * 16, "heap bytes")
    return geo


def check_snapshot(snap):
    geo = check_stats(snap["stats"])
    per_arena = geo["arena_size"] // geo["pool_size"]
    arenas = snap["arenas"]
    expect(len(arenas) == snap["stats"]["arenas"]["current"], "arena count")
    in_use = 0
    states = {"used": 0, "full": 0, "empty": 0, "untouched": 0}
    for arena in arenas:
        expect(arena["base"].startswith("0x"), "arena base")
        expect(len(arena["pools"]) == per_arena, "pools per arena")
        for pool in arena["pools"]:
            states[pool["state"]] += 1
            if pool["state"] in ("used", "full"):
                expect(pool["heap"] == 1, "owner heap")
                expect(pool["capacity"] == geo["pool_size"] // pool["block_size"],
                       "capacity")
                expect(0 < pool["in_use"] <= pool["capacity"], "in_use range")
                expect(pool["state"] != "full" or pool["in_use"] == pool["capacity"], "full pool")
                in_use += pool["in_use"]
    pools = snap["stats"]["pools"]
    for state in states:
        expect(states[state] == pools[state], f"{state} pools: {states[state]} != {pools[state]}")
    expect(in_use == N, "blocks in use over all pools")


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([binary, "json", tmp, str(N)], check=True)
        with open(f"{tmp}/stats.json") as f:
            check_stats(json.load(f))
        with open(f"{tmp}/snapshot.json") as f:
            check_snapshot(json.load(f))
    print("stats.json and snapshot.json: ok")


main()
