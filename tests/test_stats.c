/* Statistics against known allocation sequences: per class, per heap, per
 * domain, the byte totals, the printed report and the JSON documents.
 *
 *   test_stats                 the checks
 *   test_stats json DIR N      keeps N blocks of 15 bytes live, writes
 *                              DIR/stats.json and DIR/snapshot.json for
 *                              tests/check_stats_json.py to check
 */
#include <poolalloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"

static size_t capacity(const struct pa_stats *s, size_t block_size) {
  return s->pool_size / block_size;
}

static size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

static int my_thread_id(void) { return (int)syscall(SYS_gettid); }

/* n blocks of 15 bytes: the 16-byte class shows n blocks in ceil(n / cap)
 * pools, and the bytes add up to the arenas held. */
static void test_class_figures(void) {
  enum { N = 3000 };
  static void *blocks[N];
  struct pa_stats before, after;
  pa_stats_get(&before);
  size_t cls16 = 16 / before.alignment - 1;
  CHECK_EQ(before.classes[cls16].block_size, 16);
  CHECK_EQ(before.classes[cls16].blocks_in_use, 0);
  for (int i = 0; i < N; i++) blocks[i] = pa_malloc(15);
  pa_stats_get(&after);
  size_t cap = capacity(&after, 16);
  CHECK_EQ(after.classes[cls16].blocks_in_use, N);
  CHECK_EQ(after.classes[cls16].pools, ceil_div(N, cap));
  CHECK_EQ(after.classes[cls16].blocks_available, ceil_div(N, cap) * cap - N);
  CHECK_EQ(after.bytes_in_use - before.bytes_in_use, N * 16);
  CHECK_EQ(after.bytes_in_use + after.bytes_available + after.bytes_empty_pools +
               after.bytes_quantization,
           after.arenas_current * after.arena_size);
  CHECK_EQ(after.pools_full - before.pools_full, N / cap);
  CHECK_EQ(after.domains[PA_DOMAIN_MEM].small_allocations -
               before.domains[PA_DOMAIN_MEM].small_allocations,
           N);
  CHECK_EQ(after.small_allocations - before.small_allocations, N);
  for (int i = 0; i < N; i++) pa_free(blocks[i]);
  struct pa_stats freed;
  pa_stats_get(&freed);
  CHECK_EQ(freed.classes[cls16].blocks_in_use, 0);
  CHECK_EQ(freed.domains[PA_DOMAIN_MEM].small_frees - after.domains[PA_DOMAIN_MEM].small_frees, N);
  CHECK_EQ(freed.small_allocations - freed.small_frees,
           before.small_allocations - before.small_frees);
}

/* Each domain's traffic: pool blocks, and requests sent on to RAW. */
static void test_domain_traffic(void) {
  struct pa_stats s0, s1, s2;
  pa_stats_get(&s0);
  size_t LARGE = s0.large_request_threshold + 1000;
  void *obj[10];
  for (int i = 0; i < 10; i++) obj[i] = pa_obj_malloc(100);
  void *big_mem = pa_malloc(LARGE);
  void *big_obj = pa_obj_calloc(1, LARGE);
  void *raw = pa_raw_malloc(64);
  void *aligned = pa_aligned_alloc(s0.arena_size, 100);
  pa_stats_get(&s1);
  CHECK_EQ(s1.domains[PA_DOMAIN_OBJ].small_allocations - s0.domains[PA_DOMAIN_OBJ].small_allocations, 10);
  CHECK_EQ(s1.domains[PA_DOMAIN_MEM].small_allocations - s0.domains[PA_DOMAIN_MEM].small_allocations, 0);
  CHECK_EQ(s1.domains[PA_DOMAIN_MEM].large_allocations - s0.domains[PA_DOMAIN_MEM].large_allocations, 2);
  CHECK_EQ(s1.domains[PA_DOMAIN_OBJ].large_allocations - s0.domains[PA_DOMAIN_OBJ].large_allocations, 1);
  /* the raw layer served the raw request only: large blocks are poolalloc's */
  CHECK_EQ(s1.domains[PA_DOMAIN_RAW].large_allocations - s0.domains[PA_DOMAIN_RAW].large_allocations, 1);
  CHECK_EQ(s1.large_blocks - s0.large_blocks, 3);
  CHECK_EQ(s1.domains[PA_DOMAIN_RAW].small_allocations, 0);
  for (int i = 0; i < 10; i++) pa_obj_free(obj[i]);
  pa_free(big_mem);
  pa_obj_free(big_obj);
  pa_raw_free(raw);
  pa_free(aligned);
  pa_stats_get(&s2);
  CHECK_EQ(s2.domains[PA_DOMAIN_OBJ].small_frees - s1.domains[PA_DOMAIN_OBJ].small_frees, 10);
  CHECK_EQ(s2.domains[PA_DOMAIN_MEM].large_frees - s1.domains[PA_DOMAIN_MEM].large_frees, 2);
  CHECK_EQ(s2.domains[PA_DOMAIN_OBJ].large_frees - s1.domains[PA_DOMAIN_OBJ].large_frees, 1);
  CHECK_EQ(s2.domains[PA_DOMAIN_RAW].large_frees - s1.domains[PA_DOMAIN_RAW].large_frees, 1);
  CHECK_EQ(s2.large_blocks, s0.large_blocks);
  /* a realloc that moves a block out of the pools: one pool free, one large */
  void *p = pa_malloc(40);
  p = pa_realloc(p, LARGE);
  struct pa_stats s3;
  pa_stats_get(&s3);
  CHECK_EQ(s3.domains[PA_DOMAIN_MEM].small_frees - s2.domains[PA_DOMAIN_MEM].small_frees, 1);
  CHECK_EQ(s3.domains[PA_DOMAIN_MEM].large_allocations - s2.domains[PA_DOMAIN_MEM].large_allocations, 1);
  pa_free(p);
}

struct worker {
  pthread_barrier_t *ready, *done;
  void *blocks[500];
  int thread;
};

/* Allocates 500 blocks of 40 bytes, waits while the main thread looks,
 * then exits leaving them to be freed by main. */
static void *worker_main(void *arg) {
  struct worker *w = arg;
  w->thread = my_thread_id();
  for (int i = 0; i < 500; i++) w->blocks[i] = pa_malloc(40);
  pthread_barrier_wait(w->ready);
  pthread_barrier_wait(w->done);
  return NULL;
}

static const struct pa_heap_stats *heap_of_thread(const struct pa_heap_stats *heaps, size_t n,
                                                  int thread) {
  for (size_t i = 0; i < n; i++)
    if (heaps[i].thread == thread) return &heaps[i];
  return NULL;
}

static void test_heaps(void) {
  static struct pa_heap_stats heaps[64];
  pthread_barrier_t ready, done;
  pthread_barrier_init(&ready, NULL, 2);
  pthread_barrier_init(&done, NULL, 2);
  struct worker w = {.ready = &ready, .done = &done};
  pthread_t thread;
  pthread_create(&thread, NULL, worker_main, &w);
  pthread_barrier_wait(&ready);

  size_t n = pa_stats_heaps(heaps, 64);
  CHECK(n >= 2 && n <= 64);
  for (size_t i = 0; i < n && i < 64; i++) CHECK_EQ(heaps[i].id, i + 1);
  const struct pa_heap_stats *mine = heap_of_thread(heaps, n, my_thread_id());
  const struct pa_heap_stats *theirs = heap_of_thread(heaps, n, w.thread);
  CHECK(mine != NULL && theirs != NULL);
  if (mine && theirs) {
    struct pa_stats s;
    pa_stats_get(&s);
    size_t cls40 = check_block16(40) / s.alignment - 1;
    size_t block = s.classes[cls40].block_size;
    CHECK_EQ(theirs->classes[cls40].blocks_in_use, 500);
    CHECK_EQ(theirs->classes[cls40].pools, ceil_div(500, capacity(&s, block)));
    CHECK_EQ(theirs->bytes_in_use, 500 * block);
    CHECK_EQ(theirs->small_allocations, 500);
    CHECK_EQ(theirs->small_frees, 0);
    CHECK_EQ(theirs->pools_used + theirs->pools_full, theirs->classes[cls40].pools);
    CHECK_EQ(mine->classes[cls40].blocks_in_use, 0);
  }
  pthread_barrier_wait(&done);
  pthread_join(thread, NULL);

  /* The worker's heap waits for adoption; main frees its blocks remotely,
   * counted as main's frees. */
  size_t m = pa_stats_heaps(heaps, 64);
  theirs = NULL;
  for (size_t i = 0; i < m && i < 64; i++)
    if (heaps[i].thread == 0 && heaps[i].bytes_in_use > 0) theirs = &heaps[i];
  CHECK(theirs != NULL);
  mine = heap_of_thread(heaps, m, my_thread_id());
  size_t frees_before = mine ? mine->small_frees : 0;
  for (int i = 0; i < 500; i++) pa_free(w.blocks[i]);
  unsigned worker_id = theirs ? theirs->id : 0;
  pa_stats_heaps(heaps, 64);
  mine = heap_of_thread(heaps, m, my_thread_id());
  CHECK(mine != NULL && mine->small_frees - frees_before == 500);
  /* frees into an abandoned heap are done at once: its pools went back */
  CHECK(worker_id != 0 && heaps[worker_id - 1].bytes_in_use == 0);
  CHECK(worker_id != 0 && heaps[worker_id - 1].pools_used + heaps[worker_id - 1].pools_full == 0);
  pa_collect();
  struct pa_stats s;
  pa_stats_get(&s);
  CHECK_EQ(s.small_allocations, s.small_frees);
  pthread_barrier_destroy(&ready);
  pthread_barrier_destroy(&done);
}

static bool contains(const char *text, const char *needle) {
  return strstr(text, needle) != NULL;
}

/* Three arenas' worth of 256-byte blocks freed, under a long decay: the
 * report shows them held and wholly free until pa_collect. */
static size_t wholly_free_arenas_printed(void) {
  char *text = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&text, &size);
  pa_stats_print(out);
  fclose(out);
  const char *line = strstr(text, "  of which wholly free (decay)");
  size_t value = SIZE_MAX;
  if (line) {
    char digits[32] = {0};
    size_t n = 0;
    for (const char *c = strchr(line, '=') + 1; *c && *c != '\n'; c++)
      if (*c >= '0' && *c <= '9' && n < sizeof digits - 1) digits[n++] = *c;
    value = (size_t)strtoull(digits, NULL, 10);
  }
  free(text);
  return value;
}

static void test_print_decaying_arenas(void) {
  long decay = pa_arena_decay_ms(60000);
  pa_collect();
  CHECK_EQ(wholly_free_arenas_printed(), 0);
  struct pa_stats s;
  pa_stats_get(&s);
  /* the heap keeps some: 256 KiB, and the last two runs of the class */
  size_t n = 6 * (s.arena_size / s.pool_size) * capacity(&s, 256);
  void **blocks = malloc(n * sizeof *blocks);
  for (size_t i = 0; i < n; i++) blocks[i] = pa_malloc(256);
  for (size_t i = 0; i < n; i++) pa_free(blocks[i]);
  free(blocks);
  CHECK(wholly_free_arenas_printed() >= 2);
  pa_collect();
  CHECK_EQ(wholly_free_arenas_printed(), 0);
  pa_arena_decay_ms(decay);
}

static void test_print(void) {
  void *keep = pa_obj_malloc(24);
  char *text = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&text, &size);
  pa_stats_print(out);
  fclose(out);
  CHECK(contains(text, "class   size   num pools   blocks in use  avail blocks"));
  CHECK(contains(text, "# arenas allocated current"));
  CHECK(contains(text, "  of which wholly free (decay)"));
  CHECK(contains(text, "# blocks given back to the pools"));
  CHECK(contains(text, "domain    pool allocs"));
  char line[64];
  snprintf(line, sizeof line, "\n%4u  %-10d", 1u, my_thread_id());
  CHECK(contains(text, "heap  thread"));
  /* the main thread's heap is heap 1: it allocated first */
  CHECK(contains(text, line));
  free(text);
  pa_obj_free(keep);
}

static void test_json_errors(void) {
  FILE *closed = fopen("/dev/full", "w");
  CHECK(closed != NULL);
  if (closed) {
    setvbuf(closed, NULL, _IONBF, 0);
    CHECK_EQ(pa_stats_json(closed), (unsigned long long)-1);
    CHECK_EQ(pa_heap_snapshot(closed), (unsigned long long)-1);
    fclose(closed);
  }
}

/* What rounding to the size class costs is known for traced blocks: exact,
 * for them only, and pool blocks only. */
static void test_rounding(void) {
  enum { SMALL = 100, MEDIUM = 50, LARGE = 10 };
  static void *blocks[SMALL + MEDIUM + LARGE];
  struct pa_stats s;
  pa_stats_get(&s);
  CHECK_EQ(s.rounding_blocks, 0);
  CHECK_EQ(s.bytes_rounding, 0);
  CHECK_EQ(pa_trace_start(1), 0);
  int n = 0;
  for (int i = 0; i < SMALL; i++) blocks[n++] = pa_malloc(15);
  for (int i = 0; i < MEDIUM; i++) blocks[n++] = pa_malloc(100);
  for (int i = 0; i < LARGE; i++) blocks[n++] = pa_malloc(s.large_request_threshold + 1); /* not a pool's */
  pa_stats_get(&s);
  CHECK_EQ(s.rounding_blocks, SMALL + MEDIUM);
  CHECK_EQ(s.bytes_rounding,
           SMALL * (check_block16(15) - 15) + MEDIUM * (check_block16(100) - 100));
  char *text = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&text, &size);
  pa_stats_print(out);
  fclose(out);
  CHECK(strstr(text, "  of which size-class rounding (150 traced) =") != NULL);
  free(text);
  for (int i = 0; i < n; i++) pa_free(blocks[i]);
  pa_stats_get(&s);
  CHECK_EQ(s.rounding_blocks, 0);
  pa_trace_stop();
}

static int write_json(const char *dir, int n) {
  void **blocks = calloc((size_t)n, sizeof *blocks);
  for (int i = 0; i < n; i++) blocks[i] = pa_malloc(15);
  char path[4096];
  snprintf(path, sizeof path, "%s/stats.json", dir);
  FILE *out = fopen(path, "w");
  if (out == NULL || pa_stats_json(out) != 0) return 1;
  fclose(out);
  snprintf(path, sizeof path, "%s/snapshot.json", dir);
  out = fopen(path, "w");
  if (out == NULL || pa_heap_snapshot(out) != 0) return 1;
  fclose(out);
  for (int i = 0; i < n; i++) pa_free(blocks[i]);
  free(blocks);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "json") == 0) return write_json(argv[2], atoi(argv[3]));
  test_print();
  test_print_decaying_arenas();
  test_class_figures();
  test_domain_traffic();
  test_heaps();
  test_json_errors();
  test_rounding();
  return check_done();
}
