#!/usr/bin/env bash
# CPython's own regression tests with every allocation on poolalloc:
# PYTHONMALLOC=malloc sends CPython's allocations to malloc, which the
# preload makes poolalloc's.  The subset covers objects, strings, dicts,
# sets, threads, gc, pickle, json and ctypes (which stores a long double
# with movaps: 16-byte alignment); it must pass exactly as it does
# without poolalloc (same totals).
. "$(dirname "$0")/common.sh"
python=$(python3 -c 'import sys; print(sys.executable)')
"$python" -c 'import test.libregrtest' 2>/dev/null || { echo "FAIL: $python has no test package"; exit 1; }
tests=(test_dict test_set test_list test_tuple test_unicode test_class test_descr test_gc
       test_pickle test_json test_threading test_int test_bytes test_weakref test_collections
       test_itertools test_ctypes)
# Fails on this machine image with or without poolalloc (it imports from a
# thread while the stdlib is not writable for bytecode caches).
ignore=(-i test_import_from_another_thread)
run_on_poolalloc env PYTHONMALLOC=malloc "$python" -m test -j2 "${ignore[@]}" "${tests[@]}"
PYTHONMALLOC=malloc "$python" -m test -j2 "${ignore[@]}" "${tests[@]}" >"$work/off.out" 2>&1 || true
tail -4 "$work/on.out"
grep -q "^Result: SUCCESS" "$work/on.out" || { echo "FAIL: regrtest on poolalloc did not succeed"; exit 1; }
totals() { grep -E "^Total tests:" "$1"; }
[ "$(totals "$work/on.out")" = "$(totals "$work/off.out")" ] ||
  { echo "FAIL: totals differ without poolalloc: $(totals "$work/off.out")"; exit 1; }
echo "CPython regrtest: same totals as without poolalloc"
expect_served 1000000
