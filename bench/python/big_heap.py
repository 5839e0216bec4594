# A large long-lived heap (a million small objects kept) with churn on top:
# what pymalloc's arenas are tuned for and where fragmentation shows.
import random

random.seed(1)
heap = [(i, str(i), [i]) for i in range(1000000)]
for _ in range(600000):
    j = random.randrange(len(heap))
    heap[j] = (j, str(j) * 2, [j, j])
del heap[::2]
print(len(heap), sum(t[0] for t in heap) % 1000003)
