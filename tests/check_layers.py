#!/usr/bin/env python3
"""The code matches docs/design.md's table of layers: no file in src/ calls a
function defined in a file of a row above its own.

    check_layers.py SOURCE_DIR
"""
import os
import re
import sys

root = sys.argv[1]

rows = []  # the first table with files in its second column
for line in open(os.path.join(root, "docs", "design.md")):
    if line.startswith("| ") and "`src/" in line:
        rows.append(re.findall(r"`src/(\w+)\.c`", line.split("|")[2]))
    elif rows and not line.startswith("|"):
        break
rank = {name: i for i, files in enumerate(rows) for name in files}  # 0: the top

sources = {}
for entry in sorted(os.listdir(os.path.join(root, "src"))):
    if entry.endswith(".c"):
        text = open(os.path.join(root, "src", entry)).read()
        sources[entry[:-2]] = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
missing = sorted(set(sources) - set(rank))
definitions = {}
for name, text in sources.items():
    for m in re.finditer(r"^[A-Za-z_][\w \*]*?\b((?:_pa_|pa_)\w+)\s*\([^;{]*\)\s*\{", text, re.M):
        definitions[m.group(1)] = name

upward = []
for name, text in sources.items():
    for function, owner in definitions.items():
        if owner == name:
            continue
        if rank.get(owner, 0) < rank.get(name, 0) and re.search(r"\b" + function + r"\s*\(", text):
            upward.append(f"src/{name}.c calls {function} (src/{owner}.c, a row above)")
for problem in [f"src/{m}.c is in no row of docs/design.md's table" for m in missing] + upward:
    print("FAIL:", problem)
print(f"{len(sources)} files in {len(rows)} layers, {len(definitions)} functions: "
      f"{'calls run down' if not (missing or upward) else 'see above'}")
sys.exit(1 if missing or upward else 0)
