# Thin driver over CMake.  The README's two commands:
#   make demo   build, then run a Python workload on poolalloc with
#               `poolalloc run --stats --map`: statistics, and the heap map
#               page build/heapmap.html
#   make test   build and run every test: default build (+ valgrind memcheck
#               and the install check), ASan+UBSan, TSan, clang, the
#               CPython-3.10 geometry (16-byte classes, 16 KiB pools, 1 MiB
#               arenas), the secure build (-DPOOLALLOC_SECURE=ON), and
#               libFuzzer on the operations target for 30 s (test-fuzz)
#   make fuzz   the fuzzer for FUZZ_SECONDS (3600 by default); new inputs
#               collect in build-fuzz/tests/fuzz-corpus
JOBS ?= $(shell nproc)
CTEST = ctest --output-on-failure -j$(JOBS) --test-dir

.PHONY: demo test test-default test-asan test-tsan test-clang test-geometry test-secure test-fuzz fuzz bench clean

# The interpreter itself, not a pyenv shim script (which would be the
# process reported on).
PYTHON ?= $(shell python3 -c 'import sys; print(sys.executable)')

demo:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build -j$(JOBS) --target poolalloc-command poolalloc-override
	PYTHONMALLOC=malloc ./build/poolalloc run --stats --map build/heapmap.html -- \
	    $(PYTHON) examples/workload.py
	@echo "Open build/heapmap.html in a browser: the heap at its peak and at exit, and charts of the run."

test: test-default test-asan test-tsan test-clang test-geometry test-secure test-fuzz

test-default:
	cmake -S . -B build -DPOOLALLOC_VALGRIND_TESTS=ON >/dev/null
	cmake --build build -j$(JOBS)
	$(CTEST) build

test-asan:
	cmake -S . -B build-asan -DPOOLALLOC_SANITIZE=address,undefined -DPOOLALLOC_BUILD_BENCH=OFF >/dev/null
	cmake --build build-asan -j$(JOBS)
	$(CTEST) build-asan

test-tsan:
	cmake -S . -B build-tsan -DPOOLALLOC_SANITIZE=thread -DPOOLALLOC_BUILD_BENCH=OFF >/dev/null
	cmake --build build-tsan -j$(JOBS)
	$(CTEST) build-tsan

test-clang:
	cmake -S . -B build-clang -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	      -DPOOLALLOC_REAL_PROGRAM_TESTS=OFF >/dev/null
	cmake --build build-clang -j$(JOBS)
	$(CTEST) build-clang

test-geometry:
	cmake -S . -B build-geometry -DPOOLALLOC_ALIGNMENT=16 -DPOOLALLOC_POOL_SIZE=16384 \
	      -DPOOLALLOC_ARENA_SIZE=1048576 -DPOOLALLOC_BUILD_BENCH=OFF \
	      -DPOOLALLOC_REAL_PROGRAM_TESTS=OFF >/dev/null
	cmake --build build-geometry -j$(JOBS)
	$(CTEST) build-geometry

test-secure:
	cmake -S . -B build-secure -DPOOLALLOC_SECURE=ON -DPOOLALLOC_BUILD_BENCH=OFF \
	      -DPOOLALLOC_REAL_PROGRAM_TESTS=OFF >/dev/null
	cmake --build build-secure -j$(JOBS)
	$(CTEST) build-secure

FUZZ_SECONDS ?= 3600
FUZZ_CMAKE = cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	      -DPOOLALLOC_SANITIZE=address,undefined,fuzzer-no-link -DPOOLALLOC_FUZZ=ON \
	      -DPOOLALLOC_BUILD_BENCH=OFF -DPOOLALLOC_REAL_PROGRAM_TESTS=OFF >/dev/null
test-fuzz:
	$(FUZZ_CMAKE)
	cmake --build build-fuzz -j$(JOBS) --target fuzz_ops
	$(CTEST) build-fuzz -R '^fuzz_run$$'

fuzz:
	$(FUZZ_CMAKE)
	cmake --build build-fuzz -j$(JOBS) --target fuzz_ops
	./build-fuzz/tests/fuzz_ops -max_total_time=$(FUZZ_SECONDS) -timeout=20 \
	    build-fuzz/tests/fuzz-corpus tests/fuzz/corpus

bench:
	bench/run.sh
	bench/larson.sh
	bench/threads.sh
	bench/python.sh
	bench/sampling.sh
	bench/freelist.sh
	bench/handles.sh
	bench/secure.sh
	bench/gc.sh

clean:
	rm -rf build build-asan build-tsan build-clang build-geometry build-secure build-fuzz bench/results
