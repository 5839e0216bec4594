"""The demo's workload: an interpreter's heap in four phases, run by CPython
with PYTHONMALLOC=malloc so that every object is a poolalloc block.

  1. build   a table of 150,000 records (instances, tuples, strings, lists)
  2. churn   replace random records, as a long-running service does
  3. thin    drop every other record: half-empty pools, arenas still held
  4. drop    drop the rest: pools empty, arenas go back to the OS
"""
import random
import time


class Record:
    __slots__ = ("key", "name", "tags", "point")

    def __init__(self, key):
        self.key = key
        self.name = f"record-{key:06d}"
        self.tags = [key % 7, key % 11, key % 13][: 1 + key % 3]
        self.point = (key * 0.5, key * 0.25)


def phase(name, started):
    print(f"{name:<6} {time.perf_counter() - started:6.2f} s", flush=True)


def main():
    rng = random.Random(42)
    started = time.perf_counter()
    table = {key: Record(key) for key in range(150_000)}
    phase("build", started)
    for step in range(300_000):
        key = rng.randrange(150_000)
        table[key] = Record(key + step)
    phase("churn", started)
    for key in range(0, 150_000, 2):
        del table[key]
    time.sleep(0.3)
    phase("thin", started)
    table.clear()
    time.sleep(0.3)
    phase("drop", started)


main()
