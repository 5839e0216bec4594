/*
 * One benchmark source, built twice: calling malloc/free (run on glibc, or on
 * jemalloc, tcmalloc, mimalloc through LD_PRELOAD) and, with -DUSE_POOLALLOC,
 * calling pa_malloc/pa_free.  Workloads:
 *
 *   pairs N SIZE   N malloc+free pairs of SIZE bytes (SIZE 0: cycle 8..512)
 *   churn N        a working set of 50,000 blocks of 8..512 bytes, N random
 *                  replacements, every block written
 *   xthread N      a producer thread allocates N blocks, a consumer frees them
 *   heap N         N objects of an interpreter-like size mix kept live at once
 *                  (memory held vs asked for; statistics with poolalloc)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef USE_POOLALLOC
#include <poolalloc.h>
#define bench_malloc pa_malloc
#define bench_free pa_free
#else
#define bench_malloc malloc
#define bench_free free
#endif

/* Keeps the compiler from eliding a malloc/free pair. */
#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

static unsigned long long next_random(unsigned long long *state) {
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  return *state * 2685821657736338717ULL;
}

static void run_pairs(long n, size_t size) {
  for (long i = 0; i < n; i++) {
    size_t s = size ? size : 8 + (size_t)(i & 63) * 8;
    char *p = bench_malloc(s);
    ESCAPE(p);
    bench_free(p);
  }
}

static void run_churn(long n) {
  enum { WORKING_SET = 50000 };
  static char *slots[WORKING_SET];
  unsigned long long rng = 7;
  for (long i = 0; i < n; i++) {
    unsigned long long r = next_random(&rng);
    size_t index = r % WORKING_SET;
    size_t size = 8 + (r >> 32) % 505;
    bench_free(slots[index]);
    slots[index] = bench_malloc(size);
    memset(slots[index], (int)i, size);
  }
  for (int i = 0; i < WORKING_SET; i++) bench_free(slots[i]);
}

#define RING 4096
static struct {
  _Atomic size_t head, tail;
  void *items[RING];
} ring;

static void *consumer(void *arg) {
  long n = *(long *)arg;
  for (long done = 0; done < n;) {
    size_t head = atomic_load_explicit(&ring.head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&ring.tail, memory_order_acquire);
    for (; head != tail; head++, done++) bench_free(ring.items[head % RING]);
    atomic_store_explicit(&ring.head, head, memory_order_release);
  }
  return NULL;
}

static void run_xthread(long n) {
  pthread_t thread;
  pthread_create(&thread, NULL, consumer, &n);
  unsigned long long rng = 11;
  for (long i = 0; i < n; i++) {
    size_t tail = atomic_load_explicit(&ring.tail, memory_order_relaxed);
    while (tail - atomic_load_explicit(&ring.head, memory_order_acquire) == RING) {
    }
    char *p = bench_malloc(16 + next_random(&rng) % 240);
    p[0] = 1;
    ring.items[tail % RING] = p;
    atomic_store_explicit(&ring.tail, tail + 1, memory_order_release);
  }
  pthread_join(thread, NULL);
}

/* Sizes as a CPython heap has them: mostly 24..120 bytes, some strings and
 * dicts up to 512. */
static size_t heap_object_size(unsigned long long r) {
  static const size_t common[] = {24, 32, 40, 48, 56, 64, 72, 88, 104, 120};
  if (r % 8 < 7) return common[(r >> 8) % 10];
  return 24 + (r >> 16) % 489;
}

static void run_heap(long n) {
  char **objects = malloc((size_t)n * sizeof *objects);
  unsigned long long rng = 3;
  size_t asked = 0;
  for (long i = 0; i < n; i++) {
    size_t size = heap_object_size(next_random(&rng));
    objects[i] = bench_malloc(size);
    memset(objects[i], 1, size);
    asked += size;
  }
#ifdef USE_POOLALLOC
  struct pa_stats s;
  pa_stats_get(&s);
  size_t held = s.arenas_current * s.arena_size;
  printf("heap: asked %zu bytes, held %zu in %zu arenas (%.1f%% overhead): "
         "rounding %zu, free blocks %zu, quantization %zu, empty pools %zu, records %zu\n",
         asked, held, s.arenas_current, 100.0 * (double)(held - asked) / (double)asked,
         s.bytes_in_use - asked, s.bytes_available, s.bytes_quantization,
         s.bytes_empty_pools, s.bytes_metadata);
#else
  printf("heap: asked %zu bytes\n", asked);
#endif
  for (long i = 0; i < n; i++) bench_free(objects[i]);
  free(objects);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s pairs N SIZE | churn N | xthread N | heap N\n", argv[0]);
    return 2;
  }
  long n = atol(argv[2]);
  if (strcmp(argv[1], "pairs") == 0 && argc == 4)
    run_pairs(n, (size_t)atol(argv[3]));
  else if (strcmp(argv[1], "churn") == 0)
    run_churn(n);
  else if (strcmp(argv[1], "xthread") == 0)
    run_xthread(n);
  else if (strcmp(argv[1], "heap") == 0)
    run_heap(n);
  else {
    fprintf(stderr, "%s: unknown workload '%s'\n", argv[0], argv[1]);
    return 2;
  }
  return 0;
}
