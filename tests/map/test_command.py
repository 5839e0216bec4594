#!/usr/bin/env python3
"""The `poolalloc` command: options, errors, exit statuses, and what each
option does to the program it runs.  Arguments: the poolalloc binary and the
workload binary (tests/map/workload.c)."""
import json
import os
import re
import subprocess
import sys
import tempfile

poolalloc, workload = sys.argv[1], sys.argv[2]
from checks import check, finish


def run(*args, env=None):
    return subprocess.run([poolalloc, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


# --help documents every option and exits 0
r = run("--help")
check(r.returncode == 0, "--help exits 0")
for option in ("--stats", "--map", "--sample", "--debug", "--trace", "--library", "run", "map"):
    check(option in r.stdout, f"--help documents {option}")
check(re.match(r"poolalloc \d+\.\d+\.\d+\n", run("--version").stdout), "--version")

# bad usage: a clear message and status 2
for args, message in [(("run",), "run needs a command"),
                      (("run", "--stats"), "run needs a command"),
                      (("run", "--bogus", "--", "true"), "unknown option '--bogus'"),
                      (("run", "--trace", "x", "--", "true"), "--trace wants a number from 1 to 64, not 'x'"),
                      (("run", "--trace", "65", "--", "true"), "--trace wants a number"),
                      (("run", "--sample", "5", "--", "true"), "--sample needs --map"),
                      (("run", "--map"), "--map needs a value"),
                      (("frobnicate",), "unknown command 'frobnicate'"),
                      ((), "no command given"),
                      (("map", "x.json"), "map needs -o FILE.html")]:
    r = run(*args)
    check(r.returncode == 2, f"{args}: status {r.returncode}, want 2")
    check(message in r.stderr, f"{args}: stderr {r.stderr!r} lacks {message!r}")
    check("Try 'poolalloc --help'." in r.stderr, f"{args}: points to --help")
r = run("run", "--library", "/nonexistent.so", "--", "true")
check(r.returncode == 2 and "cannot find the override library /nonexistent.so" in r.stderr,
      "a missing library is named")

# the command's exit status passes through; a signal gives 128 + N
check(run("run", "--", workload, "3").returncode == 3, "exit status 3 passes through")
check(run("run", "--", workload).returncode == 0, "exit status 0 passes through")
r = run("run", "--", "sh", "-c", "kill -TERM $$")
check(r.returncode == 128 + 15 and "ended by signal 15" in r.stderr, "signal gives 143")
r = run("run", "--", "/nonexistent/program")
check(r.returncode == 127 and "cannot run /nonexistent/program" in r.stderr, "missing CMD gives 127")

# --stats: the run's own statistics, once, after it exits
r = run("run", "--stats", "--", workload)
check(r.stderr.count("Small block threshold") == 1, "--stats prints the statistics once")
heap_lines = re.findall(r"^\s+(\d+)\s+(\d+|\(exited\))\s+\d+/\d+", r.stderr, re.M)
check(len(heap_lines) == 2, f"--stats shows both thread heaps: {heap_lines}")
check(("2", "(exited)") in heap_lines, "the worker's heap shows its thread exited")
mem = re.search(r"^mem\s+(\d+)\s+(\d+)", r.stderr, re.M)
check(mem and int(mem.group(1)) >= 50000 and int(mem.group(2)) >= 50000,
      "the mem domain's pool traffic counts the workload's 50000 blocks")

# --debug: a double free is reported and aborts
r = run("run", "--debug", "--", sys.executable, "-c",
        "import ctypes; libc = ctypes.CDLL(None); libc.malloc.restype = ctypes.c_void_p; "
        "libc.free.argtypes = [ctypes.c_void_p]; p = libc.malloc(24); libc.free(p); libc.free(p)")
check(r.returncode == 128 + 6, f"--debug: double free aborts (status {r.returncode})")
check("double free" in r.stderr, "--debug names the fault")

# --trace: blocks live at exit are reported by where they were allocated
r = run("run", "--trace", "4", "--", sys.executable, "-c",
        "import ctypes; libc = ctypes.CDLL(None); libc.malloc(777)")
check(r.returncode == 0, "--trace: exit status 0")
check("777" in r.stderr or "blocks still allocated" in r.stderr, f"--trace reports live blocks")

# --map: the page holds the run's data
with tempfile.TemporaryDirectory() as tmp:
    page = os.path.join(tmp, "map.html")
    r = run("run", "--map", page, "--sample", "10", "--", workload, "5")
    check(r.returncode == 5, "--map keeps the exit status")
    check(f"heap map written to {page}" in r.stderr, "--map says where the page is")
    html = open(page).read()
    data = json.loads(re.search(r"const DATA = (.*?);\n</script>", html, re.S).group(1))
    check(data["status"] == 5 and data["command"].endswith("workload 5"), "page names the run")
    check(data["sample_ms"] == 10, "sampling interval")
    samples = data["samples"]
    check(len(samples) >= 10, f"samples over ~300 ms at 10 ms: {len(samples)}")
    check(all(b["t"] >= a["t"] for a, b in zip(samples, samples[1:])), "samples in time order")
    check(max(s["live"] for s in samples) >= 30000 * 24 + 20000 * 104, "peak live bytes")
    check(samples[-1]["live"] < 100000, "the last sample, at exit, shows the blocks freed")
    peak, at_exit = data["snapshot"]["peak"], data["snapshot"]["exit"]
    check(peak["stats"]["bytes"]["in_use"] >= 30000 * 24 + 20000 * 104, "peak snapshot in use")
    check(len(peak["stats"]["heaps"]) == 2, "two heaps at the peak")
    check(at_exit["stats"]["bytes"]["in_use"] < peak["stats"]["bytes"]["in_use"], "exit below peak")
    # the progress line: shown every 10 s off a terminal, so not in a short run
    check("sampling," not in r.stderr, "no progress line in a short run off a terminal")

    # `poolalloc map` draws a snapshot written by pa_heap_snapshot()
    snap_path = os.path.join(tmp, "snap.json")
    with open(snap_path, "w") as f:
        json.dump(peak, f)
    out = os.path.join(tmp, "map2.html")
    r = run("map", snap_path, "-o", out)
    check(r.returncode == 0 and os.path.getsize(out) > 10000, "poolalloc map writes a page")
    r = run("map", os.path.join(tmp, "missing.json"), "-o", out)
    check(r.returncode == 1 and "cannot read" in r.stderr, "poolalloc map: missing input")

# the progress line on a terminal: run under script(1), which gives a pty
if subprocess.run(["sh", "-c", "command -v script"], capture_output=True).returncode == 0:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = f"{poolalloc} run --map {tmp}/m.html --sample 20 -- sh -c 'sleep 2.3'"
        r = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, timeout=60)
        check(r.returncode == 0, "run under a terminal")
        shown = re.findall(rb"\r\x1b\[Kpoolalloc: sampling, (\d+) s, (\d+) samples", r.stdout)
        check(len(shown) >= 2, f"the progress line updates on a terminal: {shown}")

finish()
