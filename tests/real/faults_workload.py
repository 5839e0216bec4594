# Grows a heap in rounds while mappings may fail: a round that meets
# MemoryError is counted and dropped; what was kept must stay intact.
kept = []
failed = 0
for round in range(60):
    try:
        batch = [(i, "item-%d-%d" % (round, i), [i] * (i % 7)) for i in range(1500)]
        index = {entry[1]: entry for entry in batch}
        kept.append((batch, index))
    except MemoryError:
        failed += 1
batch = index = None
for batch, index in kept:
    for i, name, ints in batch:
        assert index[name][0] == i and ints == [i] * (i % 7), name
print("OK", len(kept), failed)
