#!/usr/bin/env bash
# Fault injection through the override in a real program: CPython
# (PYTHONMALLOC=malloc, so every object comes from poolalloc) runs a workload
# that grows its heap in rounds, catching MemoryError, while OS maps N to
# N+3 are refused (POOLALLOC_FAIL_MAPS), for every N until a run needs
# fewer maps.  Each run must either finish with every kept object intact, or
# stop with Python's own report of the memory error; never a crash, never
# wrong data.  Runs that met a refusal in the workload must go on to the end.
# One crash is CPython's own, and is told apart by where it happens: 3.11's
# PyThreadState_New passes the NULL of a failed allocation on to
# _PyThreadState_SetCurrent, which reads through it (interpreter start-up).
# $2, tests/real/segv_frames.c, writes the frames of a crash.
. "$(dirname "$0")/common.sh"
python=$(python3 -c 'import sys; print(sys.executable)') # not a pyenv shim
script=$(dirname "$0")/faults_workload.py
rounds=60
finished=0 stopped=0 continued=0 cpython_crashed=0
export PYTHONMALLOC=malloc PYTHONHASHSEED=0 # runs alike from one test run to the next

segv_frames=$(realpath "$2")

# True if the crash whose frames $1 holds is CPython's in PyThreadState_New:
# the first frames past the handler and the signal's return.
cpython_crash() {
  awk '/^segv_frames:/ {on = 1; next}
       on && !/segv_frames|libc\.so/ {print; if (++n == 2) exit}' "$1" >"$work/frames"
  grep -q '(_PyThreadState_SetCurrent+' <(sed -n 1p "$work/frames") &&
    grep -q '(PyThreadState_New+' <(sed -n 2p "$work/frames")
}

for ((n = 1; ; n++)); do
  status=0
  rm -f "$work/frames"
  POOLALLOC_VERBOSE=1 POOLALLOC_FAIL_MAPS=$n-$((n + 3)) LD_PRELOAD="$preload $segv_frames" \
    "$python" "$script" >"$work/out" 2>"$work/err" || status=$?
  refused=$(grep -c 'failed: injected failure' "$work/err" || true)
  if [ "$status" -eq 0 ]; then
    read -r word kept failed <"$work/out" || true
    if [ "$word" != OK ] || [ $((kept + failed)) -ne $rounds ]; then
      echo "FAIL: maps $n-$((n + 3)) refused: wrong output: $(cat "$work/out")"; exit 1
    fi
    finished=$((finished + 1))
    [ "$failed" -gt 0 ] && continued=$((continued + 1))
  elif { [ "$status" -eq 1 ] || [ "$status" -eq 134 ]; } &&
       grep -qiE 'memory|Fatal Python error: (init|pycore_init|error reading frozen)' "$work/err" &&
       ! grep -q 'AssertionError' "$work/err"; then
    # Python reported running out of memory and stopped, or could not start
    # (its start-up reports some refusals as a failed import or an unreadable
    # frozen module, not MemoryError)
    stopped=$((stopped + 1))
  elif [ "$status" -eq 139 ] && cpython_crash "$work/err"; then
    cpython_crashed=$((cpython_crashed + 1))
  else
    echo "FAIL: maps $n-$((n + 3)) refused: exit status $status"; tail -n 20 "$work/err"
    [ -s "$work/frames" ] && cat "$work/frames"
    exit 1
  fi
  [ "$refused" -eq 0 ] && break # the run needed fewer than n maps: the walk is over
done
echo "walked $((n - 1)) windows of refused maps: $finished runs finished with every object intact" \
     "($continued of them after MemoryError in the workload), $stopped stopped with Python's memory error," \
     "$cpython_crashed in CPython's PyThreadState_New"
if [ "$continued" -eq 0 ] || [ "$finished" -lt $((n / 2)) ]; then
  echo "FAIL: too few runs went on after a refusal"; exit 1
fi
