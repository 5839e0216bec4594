/* Statistics counters that no two threads write: each thread counts its own
 * traffic (pool blocks, large blocks, the raw layer's calls and bytes) in
 * its heap record, and the sums come out exact when
 * blocks are allocated in one thread and freed in another, and when a
 * thread frees after its heap was given up at exit (the late counters). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h"

enum { BLOCKS = 200, LARGE = PA_LARGE_REQUEST_THRESHOLD + 1000 };

static struct pa_stats stats(void) {
  struct pa_stats s;
  pa_stats_get(&s);
  return s;
}

/* The calling thread's own heap record takes every count of its traffic. */
static void test_counted_in_own_heap(void) {
  void *warm = pa_malloc(16); /* this thread has a heap from here on */
  const struct pa_heap_counts before = _pa_thread_heap->counts;
  void *mem = pa_malloc(LARGE), *obj = pa_obj_malloc(LARGE), *raw = pa_raw_malloc(LARGE);
  const struct pa_heap_counts *now = &_pa_thread_heap->counts;
  CHECK_EQ(now->large_allocations[PA_DOMAIN_MEM] - before.large_allocations[PA_DOMAIN_MEM], 1);
  CHECK_EQ(now->large_allocations[PA_DOMAIN_OBJ] - before.large_allocations[PA_DOMAIN_OBJ], 1);
  CHECK_EQ(now->raw_allocations - before.raw_allocations, 1); /* the large ones are poolalloc's */
  CHECK(now->raw_bytes_allocated - before.raw_bytes_allocated >= LARGE);
  pa_free(mem);
  pa_obj_free(obj);
  pa_raw_free(raw);
  CHECK_EQ(now->large_frees[PA_DOMAIN_MEM] - before.large_frees[PA_DOMAIN_MEM], 1);
  CHECK_EQ(now->large_frees[PA_DOMAIN_OBJ] - before.large_frees[PA_DOMAIN_OBJ], 1);
  CHECK_EQ(now->raw_frees - before.raw_frees, 1);
  CHECK_EQ(now->raw_bytes_freed - before.raw_bytes_freed,
           now->raw_bytes_allocated - before.raw_bytes_allocated);
  pa_free(warm);
}

static void *blocks[2][BLOCKS];

static void *allocate_all(void *arg) {
  (void)arg;
  for (int i = 0; i < BLOCKS; i++) {
    blocks[0][i] = pa_malloc(40);
    blocks[1][i] = pa_malloc(LARGE + i);
  }
  return NULL;
}

/* Made in one thread, freed in another: each side counted its half, and
 * the sums balance.  A thread that only frees gets a heap to count in. */
static void *free_all(void *arg) {
  (void)arg;
  for (int i = 0; i < BLOCKS; i++) {
    pa_free(blocks[0][i]);
    pa_free(blocks[1][i]);
  }
  bool counted_here = _pa_thread_heap != &_pa_empty_heap &&
                      _pa_thread_heap->counts.frees[PA_DOMAIN_MEM] >= BLOCKS &&
                      _pa_thread_heap->counts.large_frees[PA_DOMAIN_MEM] == BLOCKS;
  return counted_here ? arg : (void *)1;
}

static void test_across_threads(void) {
  struct pa_stats s0 = stats();
  pthread_t t;
  pthread_create(&t, NULL, allocate_all, NULL);
  pthread_join(t, NULL);
  struct pa_stats s1 = stats();
  CHECK_EQ(s1.domains[PA_DOMAIN_MEM].small_allocations - s0.domains[PA_DOMAIN_MEM].small_allocations,
           BLOCKS);
  CHECK_EQ(s1.domains[PA_DOMAIN_MEM].large_allocations - s0.domains[PA_DOMAIN_MEM].large_allocations,
           BLOCKS);
  CHECK_EQ(s1.large_blocks - s0.large_blocks, BLOCKS);
  CHECK(s1.large_bytes_in_use - s0.large_bytes_in_use >= (size_t)BLOCKS * LARGE);
  void *result = (void *)2;
  pthread_create(&t, NULL, free_all, NULL);
  pthread_join(t, &result);
  CHECK(result == NULL); /* the freeing thread counted in its own heap */
  struct pa_stats s2 = stats();
  CHECK_EQ(s2.domains[PA_DOMAIN_MEM].small_frees - s1.domains[PA_DOMAIN_MEM].small_frees, BLOCKS);
  CHECK_EQ(s2.domains[PA_DOMAIN_MEM].large_frees - s1.domains[PA_DOMAIN_MEM].large_frees, BLOCKS);
  CHECK_EQ(s2.large_blocks, s0.large_blocks);
  CHECK_EQ(s2.large_bytes_in_use, s0.large_bytes_in_use);
}

/* A destructor of the program's that runs after poolalloc's own (keys run
 * in order of creation, and poolalloc's was made by this thread's first
 * allocation): its frees find the heap given up and count late. */
static pthread_key_t late_key;

static void free_late(void *arg) {
  void **pair = arg;
  pa_free(pair[0]);
  pa_free(pair[1]);
  pa_free(pair);
}

static void *exit_with_blocks(void *arg) {
  (void)arg;
  void **pair = pa_malloc(2 * sizeof *pair);
  pair[0] = pa_malloc(40);
  pair[1] = pa_malloc(LARGE);
  pthread_setspecific(late_key, pair);
  return NULL;
}

static void test_late_frees(void) {
  pthread_key_create(&late_key, free_late);
  struct pa_stats s0 = stats();
  pthread_t t;
  pthread_create(&t, NULL, exit_with_blocks, NULL);
  pthread_join(t, NULL);
  struct pa_stats s1 = stats();
  CHECK_EQ(s1.domains[PA_DOMAIN_MEM].small_allocations - s0.domains[PA_DOMAIN_MEM].small_allocations,
           2);
  CHECK_EQ(s1.domains[PA_DOMAIN_MEM].small_frees - s0.domains[PA_DOMAIN_MEM].small_frees, 2);
  CHECK_EQ(s1.domains[PA_DOMAIN_MEM].large_frees - s0.domains[PA_DOMAIN_MEM].large_frees, 1);
  CHECK_EQ(s1.large_blocks, s0.large_blocks);
  CHECK_EQ(s1.heaps_abandoned, s1.heaps - 1); /* the late frees made no heap */
  pthread_key_delete(late_key);
}

/* The peak follows the raw bytes in use to within a mebibyte per thread,
 * though no statistics were read at the top (run first, while the shared
 * total is exact), and is never below what is in use when it is read. */
static void test_raw_peak(void) {
  enum { MIB = 1 << 20, PIECES = 6 };
  void *pieces[PIECES];
  for (int i = 0; i < PIECES; i++) pieces[i] = pa_raw_malloc(MIB / 2);
  for (int i = 0; i < PIECES; i++) pa_raw_free(pieces[i]);
  struct pa_stats s = stats();
  CHECK(s.raw_bytes_peak >= PIECES * (size_t)MIB / 2 - MIB);
  CHECK(s.raw_bytes_peak < PIECES * (size_t)MIB / 2 + MIB);
  void *live = pa_raw_malloc(MIB / 4);
  s = stats();
  CHECK(s.raw_bytes_peak >= s.raw_bytes_in_use);
  pa_raw_free(live);
}

int main(void) {
  test_raw_peak();
  test_counted_in_own_heap();
  test_across_threads();
  test_late_frees();
  return check_done();
}
