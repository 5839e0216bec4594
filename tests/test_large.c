/* Large blocks and the layer boundaries: a span per block, kept for reuse
 * so an allocate/free loop maps once, a cached span cleared for calloc,
 * realloc in place within the span and by the kernel past it, across every
 * layer (small, medium, large) both ways with the data intact, alignments
 * up to twice an arena, refused mappings, frees of large and medium blocks
 * of a thread that exited, and the cache given back. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "inline.h"

static struct pa_stats stats(void) {
  struct pa_stats s;
  pa_stats_get(&s);
  return s;
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 31 + seed);
}
static bool holds(const unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(i * 31 + seed)) return false;
  return true;
}

/* A loop that allocates and frees a mebibyte maps once. */
static void test_cache_reuse(void) {
  struct pa_stats s0 = stats();
  for (int i = 0; i < 100; i++) {
    unsigned char *p = pa_malloc(1 << 20);
    CHECK(p != NULL);
    p[0] = p[(1 << 20) - 1] = 1;
    pa_free(p);
  }
  struct pa_stats s1 = stats();
  CHECK(s1.large_maps - s0.large_maps <= 1);
  CHECK(s1.large_cache_hits - s0.large_cache_hits >= 99);
  CHECK(s1.large_bytes_cached >= 1 << 20);
  pa_collect(); /* gives the cached span back */
  CHECK_EQ(stats().large_bytes_cached, 0);
}

/* A cached span larger than a request serves it, its chunks past the
 * request given back first; a loop of two sizes then keeps a span of each
 * and maps no more. */
static void test_cache_split(void) {
  long decay = pa_arena_decay_ms(10000); /* nothing expires while it runs */
  pa_collect();
  struct pa_stats s0 = stats();
  unsigned char *big = pa_malloc(4 << 20);
  big[0] = 1;
  pa_free(big);
  CHECK_EQ(stats().large_bytes_cached, 4 << 20);
  unsigned char *small = pa_malloc(1 << 20);
  CHECK(small == big);
  struct pa_stats s1 = stats();
  CHECK_EQ(s1.large_maps - s0.large_maps, 1);
  CHECK_EQ(s1.large_cache_hits - s0.large_cache_hits, 1);
  CHECK_EQ(s1.large_bytes_mapped - s0.large_bytes_mapped, 1 << 20);
  CHECK_EQ(s1.large_bytes_cached, 0);
  CHECK_EQ(pa_usable_size(small), 1 << 20);
  pa_free(small);
  for (int i = 0; i < 20; i++) {
    pa_free(pa_malloc(3 << 20));
    pa_free(pa_malloc(1 << 20));
  }
  struct pa_stats s2 = stats();
  CHECK_EQ(s2.large_maps - s1.large_maps, 1); /* the 3 MiB span; the 1 MiB one is the split's */
  CHECK_EQ(s2.large_bytes_cached, 4 << 20);
  pa_collect();
  pa_arena_decay_ms(decay);
}

/* calloc of a fresh span and of a cached one: zero either way. */
static void test_calloc_zero(void) {
  enum { SIZE = 3 << 20 };
  unsigned char *p = pa_calloc(1, SIZE);
  bool zero = true;
  for (size_t i = 0; i < SIZE; i += 4093) zero &= p[i] == 0;
  CHECK(zero);
  memset(p, 0xab, SIZE);
  pa_free(p);
  unsigned char *q = pa_calloc(SIZE, 1);
  CHECK(q == p); /* the cached span */
  zero = true;
  for (size_t i = 0; i < SIZE; i++) zero &= q[i] == 0;
  CHECK(zero);
  pa_free(q);
  pa_collect();
}

/* Growing within the span keeps the pointer; growing past it keeps the
 * data, and so does shrinking; usable sizes are the request rounded up to
 * a page, all writable. */
static void test_realloc_large(void) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t first = PA_ARENA_SIZE + 1000; /* a span of two chunks */
  unsigned char *p = pa_malloc(first);
  CHECK_EQ(pa_usable_size(p), (first + page - 1) / page * page);
  fill(p, first, 1);
  unsigned char *q = pa_realloc(p, 2 * PA_ARENA_SIZE - 10);
  CHECK(q == p);
  CHECK(holds(q, first, 1));
  size_t big = 64 << 20;
  unsigned char *r = pa_realloc(q, big);
  CHECK(r != NULL);
  CHECK(holds(r, first, 1));
  CHECK_EQ(pa_usable_size(r), big);
  r[big - 1] = 7;
  unsigned char *s = pa_realloc(r, PA_ARENA_SIZE + 1);
  CHECK(s == r); /* shrinking stays, and gives the chunks past it back */
  CHECK(holds(s, PA_ARENA_SIZE, 1));
  CHECK_EQ(pa_arena_of(s)->mapping_size, 2 * PA_ARENA_SIZE);
  pa_free(s);
}

/* Sizes on each side of every layer boundary, reallocated to each other:
 * the bytes both hold survive every move. */
static void test_realloc_across_layers(void) {
  const size_t sizes[] = {16, 512, 513, 4096, PA_LARGE_REQUEST_THRESHOLD,
                          PA_LARGE_REQUEST_THRESHOLD + 1, 4 * PA_ARENA_SIZE + 3};
  enum { N = sizeof sizes / sizeof *sizes };
  for (int a = 0; a < N; a++)
    for (int b = 0; b < N; b++) {
      unsigned char *p = pa_malloc(sizes[a]);
      fill(p, sizes[a], (unsigned)(a + b));
      unsigned char *q = pa_realloc(p, sizes[b]);
      size_t kept = sizes[a] < sizes[b] ? sizes[a] : sizes[b];
      CHECK(q != NULL && holds(q, kept, (unsigned)(a + b)));
      CHECK(pa_usable_size(q) >= sizes[b]);
      pa_free(q);
    }
}

/* Alignments from 32 bytes to twice an arena, for sizes in every layer:
 * aligned, the size usable, and from poolalloc's arenas or spans; up to
 * a quarter of an arena, a size that fits the pools gets a pool block. */
static void test_alignments(void) {
  const size_t sizes[] = {1, 100, 3000, PA_LARGE_REQUEST_THRESHOLD + 5};
  size_t failures = 0;
  for (size_t alignment = 32; alignment <= 2 * PA_ARENA_SIZE; alignment *= 2)
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
      unsigned char *p = pa_aligned_alloc(alignment, sizes[i]);
      bool pooled = alignment <= PA_LARGE_REQUEST_THRESHOLD && sizes[i] <= PA_LARGE_REQUEST_THRESHOLD;
      if (p == NULL || (uintptr_t)p % alignment != 0 || pa_usable_size(p) < sizes[i] ||
          pa_arena_of(p) == NULL || (pa_arena_of(p)->large_size == 0) != pooled) {
        fprintf(stderr, "aligned_alloc(%zu, %zu) = %p\n", alignment, sizes[i], (void *)p);
        failures++;
      }
      if (p) memset(p, 1, sizes[i]);
      pa_free(p);
    }
  CHECK_EQ(failures, 0);
}

/* A refused mapping is NULL with ENOMEM, and nothing is lost. */
static void test_refused_maps(void) {
  pa_collect();
  _pa_os_fail_after(0);
  errno = 0;
  CHECK(pa_malloc(2 << 20) == NULL);
  CHECK_EQ(errno, ENOMEM);
  errno = 0;
  CHECK(pa_calloc(1, 5 << 20) == NULL);
  CHECK_EQ(errno, ENOMEM);
  _pa_os_fail_after(-1);
  void *p = pa_malloc(2 << 20);
  CHECK(p != NULL);
  pa_free(p);
}

/* Blocks of every layer made by a thread that then exits, freed here. */
static void *make_blocks(void *arg) {
  void **blocks = arg;
  blocks[0] = pa_malloc(40);
  blocks[1] = pa_malloc(3000);
  blocks[2] = pa_malloc(PA_LARGE_REQUEST_THRESHOLD * 3);
  for (int i = 0; i < 3; i++) memset(blocks[i], i + 1, 40);
  return NULL;
}

static void test_exited_thread_blocks(void) {
  struct pa_stats s0 = stats();
  void *blocks[3];
  pthread_t thread;
  pthread_create(&thread, NULL, make_blocks, blocks);
  pthread_join(thread, NULL);
  for (int i = 0; i < 3; i++) {
    CHECK(((unsigned char *)blocks[i])[39] == i + 1);
    pa_free(blocks[i]);
  }
  struct pa_stats s1 = stats();
  CHECK_EQ(s1.large_blocks, s0.large_blocks);
  CHECK_EQ(s1.small_allocations - s0.small_allocations, s1.small_frees - s0.small_frees);
}

int main(void) {
  test_cache_reuse();
  test_cache_split();
  test_calloc_zero();
  test_realloc_large();
  test_realloc_across_layers();
  test_alignments();
  test_refused_maps();
  test_exited_thread_blocks();
  return check_done();
}
