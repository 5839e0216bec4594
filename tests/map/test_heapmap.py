#!/usr/bin/env python3
"""The heap map in a real browser: Debian's chromium, headless (installed
when missing).  Runs the workload under `poolalloc run --map`, opens the page,
checks that it drew one row per arena and one cell per pool of the snapshot
it holds, the three charts with a mark per arena release, and the figures of
a pinned pool; saves a screenshot.  Arguments: the poolalloc binary, the
workload binary, the directory for the page and the screenshot."""
import json
import os
import re
import shutil
import subprocess
import sys

poolalloc, workload, out_dir = sys.argv[1:4]
from checks import check, finish


def find_chromium():
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    print("chromium is missing: installing Debian's package")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return shutil.which("chromium")


def chromium(*args):
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--virtual-time-budget=5000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


browser = find_chromium()
page = os.path.join(out_dir, "heapmap.html")
r = subprocess.run([poolalloc, "run", "--map", page, "--sample", "10", "--", workload],
                   capture_output=True, text=True, timeout=120)
check(r.returncode == 0, f"run: {r.stderr}")
html = open(page).read()
data = json.loads(re.search(r"const DATA = (.*?);\n</script>", html, re.S).group(1))
peak = data["snapshot"]["peak"]
arenas = len(peak["arenas"])
pools = sum(len(a["pools"]) for a in peak["arenas"])
check(arenas >= 2, f"the workload holds several arenas at its peak: {arenas}")
states = {}
for arena in peak["arenas"]:
    for pool in arena["pools"]:
        states[pool["state"]] = states.get(pool["state"], 0) + 1

# what the page drew (the first view is the peak)
dom = chromium("--dump-dom", "file://" + page).stdout
check('data-ready="1"' in dom, "the page's script ran to the end")
check('data-view="at peak"' in dom, "the page opens at the peak")
rows = dom.count('class="arena"')
check(rows == arenas, f"{rows} arena rows drawn, {arenas} in the snapshot")
drawn = re.findall(r'class="pool (\w+)', dom)
check(len(drawn) == pools, f"{len(drawn)} pool cells drawn, {pools} in the snapshot")
for state, n in states.items():
    check(drawn.count(state) == n, f"{state}: {drawn.count(state)} drawn, {n} in the snapshot")
check(dom.count("data-chart=") == 3, "three charts")
releases = sum(1 for a, b in zip(data["samples"], data["samples"][1:]) if b["released"] > a["released"])
check(releases >= 1, "the workload gave arenas back to the OS during the run")
check(dom.count('class="release"') == 3 * releases, f"each chart marks the {releases} releases")
check(f"{peak['stats']['arenas']['current']}</b><span>arenas held" in dom, "totals: arenas held")

# a pinned pool shows its figures (#pool=A:P pins it, as a click does)
index = next(i for i, p in enumerate(peak["arenas"][0]["pools"]) if p["state"] in ("used", "full"))
pool = peak["arenas"][0]["pools"][index]
dom = chromium("--dump-dom", f"file://{page}#pool=0:{index}").stdout
panel = re.search(r'<div class="panel" id="panel">(.*?)</div>', dom, re.S)
check(panel is not None, "the panel is there")
if panel:
    text = re.sub(r"<[^>]+>", " ", panel.group(1))
    check(f"{pool['in_use']:,} of {pool['capacity']:,}" in text, f"pinned pool's blocks: {text}")
    check(f"({pool['block_size']}-byte blocks)" in text, "pinned pool's size class")
    check(f"{index} of 64" in text or f"{index} of {len(peak['arenas'][0]['pools'])}" in text,
          "pinned pool's position")
check("pool used pinned" in dom or "pool full pinned" in dom, "the pinned cell is outlined")

shot = os.path.join(out_dir, "heapmap.png")
chromium(f"--screenshot={shot}", "--window-size=1300,1100", "file://" + page)
check(os.path.exists(shot) and os.path.getsize(shot) > 20000, "screenshot saved")
with open(shot, "rb") as f:
    check(f.read(8) == b"\x89PNG\r\n\x1a\n", "the screenshot is a PNG")
print(f"screenshot: {shot}")
finish()
