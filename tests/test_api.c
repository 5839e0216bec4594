/* The public API's contracts: realloc across the 512-byte line, calloc
 * overflow and zeroing, alignment, usable size, foreign pointers, and
 * surviving exhaustion of the OS. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "inline.h"

static void fill(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 7);
}
static bool holds(const unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(seed + i * 7)) return false;
  return true;
}

enum { LARGE = PA_LARGE_REQUEST_THRESHOLD + 1000 };

static void test_realloc(void) {
  unsigned char *p = pa_realloc(NULL, 10); /* NULL: malloc */
  CHECK(p != NULL && pa_arena_of(p) != NULL);
  fill(p, 10, 1);
  CHECK(pa_realloc(p, 16) == p); /* still fits its class */
  CHECK(pa_realloc(p, 13) == p);
  /* small -> large moves out of the pools into a span, data intact */
  unsigned char *q = pa_realloc(p, LARGE);
  CHECK(q != NULL && pa_arena_of(q) != NULL && pa_arena_of(q)->large_size >= LARGE);
  CHECK(holds(q, 10, 1));
  fill(q, LARGE, 3);
  /* large -> small comes back into a pool, the kept prefix intact */
  unsigned char *r = pa_realloc(q, 100);
  CHECK(r != NULL && pa_arena_of(r) != NULL);
  CHECK(holds(r, 100, 3));
  /* shrinking far below the class moves to a smaller block */
  fill(r, 100, 5);
  unsigned char *s = pa_realloc(r, 20);
  CHECK(s != r && pa_usable_size(s) < 100);
  CHECK(holds(s, 20, 5));
  /* growing within the small range */
  unsigned char *t = pa_realloc(s, 500);
  CHECK(holds(t, 20, 5));
  CHECK_EQ(pa_usable_size(t), pa_class_block_size(pa_domain_class(PA_DOMAIN_MEM, 500)));
  errno = 0;
  CHECK(pa_realloc(t, 0) == NULL); /* glibc: frees, returns NULL */
  void *huge = pa_malloc(100);
  errno = 0;
  CHECK(pa_realloc(huge, SIZE_MAX - 4096) == NULL);
  CHECK_EQ(errno, ENOMEM);
  CHECK(pa_usable_size(huge) >= 100); /* untouched on failure */
  pa_free(huge);
}

static void test_calloc(void) {
  errno = 0;
  CHECK(pa_calloc(SIZE_MAX / 2, 3) == NULL);
  CHECK_EQ(errno, ENOMEM);
  errno = 0;
  CHECK(pa_calloc((size_t)1 << 33, (size_t)1 << 33) == NULL);
  CHECK_EQ(errno, ENOMEM);
  unsigned char *dirty = pa_malloc(48);
  memset(dirty, 0xab, 48);
  pa_free(dirty);
  unsigned char *clean = pa_calloc(6, 8); /* gets the dirty block back */
  CHECK(clean == dirty);
  bool zero = true;
  for (int i = 0; i < 48; i++) zero &= clean[i] == 0;
  CHECK(zero);
  unsigned char *big = pa_calloc(1000, 10);
  zero = true;
  for (int i = 0; i < 10000; i++) zero &= big[i] == 0;
  CHECK(zero);
  pa_free(clean);
  pa_free(big);
  void *none = pa_calloc(0, 8);
  CHECK(none != NULL);
  pa_free(none);
}

static void test_huge_sizes(void) {
  errno = 0;
  CHECK(pa_malloc(SIZE_MAX) == NULL);
  CHECK_EQ(errno, ENOMEM);
  errno = 0;
  CHECK(pa_malloc((size_t)PTRDIFF_MAX + 1) == NULL);
  CHECK_EQ(errno, ENOMEM);
}

static void test_alignment(void) {
  for (size_t align = 1; align <= ((size_t)1 << 20); align <<= 1) {
    for (size_t size = 1; size <= 4096; size = size * 3 + 1) {
      void *p = pa_aligned_alloc(align, size);
      CHECK(p != NULL);
      CHECK_EQ((uintptr_t)p % align, 0);
      CHECK(pa_usable_size(p) >= size);
      memset(p, 0x5a, size);
      pa_free(p);
      void *q = NULL;
      if (align >= sizeof(void *)) {
        CHECK_EQ(pa_posix_memalign(&q, align, size), 0);
        CHECK_EQ((uintptr_t)q % align, 0);
        pa_free(q);
      }
    }
  }
  void *p = (void *)1;
  errno = 0;
  CHECK(pa_aligned_alloc(3, 16) == NULL);
  CHECK_EQ(errno, EINVAL);
  CHECK(pa_aligned_alloc(0, 16) == NULL);
  CHECK_EQ(pa_posix_memalign(&p, 24, 16), EINVAL);
  CHECK_EQ(pa_posix_memalign(&p, 4, 16), EINVAL);
  CHECK(p == (void *)1); /* untouched on error */
  CHECK_EQ(pa_posix_memalign(&p, 64, SIZE_MAX - 100), ENOMEM);
}

/* Every MEM and RAW entry point, 1 byte to 1 MiB: 16-byte aligned from 16
 * bytes up (malloc's contract on x86-64). */
static void *calloc_count(size_t n) { return pa_calloc(n, 1); }
static void *calloc_size(size_t n) { return pa_calloc(1, n); }
static void *realloc_fresh(size_t n) { return pa_realloc(NULL, n); }
static void *realloc_grown(size_t n) { return pa_realloc(pa_malloc(n > 1 ? n / 2 : 1), n); }
static void *realloc_shrunk(size_t n) { return pa_realloc(pa_malloc(n * 2), n); }
static void *mem_calloc(size_t n) { return pa_mem_calloc(n, 1); }
static void *mem_realloc(size_t n) { return pa_mem_realloc(pa_mem_malloc(n / 3 + 1), n); }
static void *raw_calloc_size(size_t n) { return pa_raw_calloc(1, n); }
static void *raw_realloc_shrunk(size_t n) { return pa_raw_realloc(pa_raw_malloc(n * 3 / 2), n); }
static void *aligned16(size_t n) { return pa_aligned_alloc(16, n); }

static void test_alignment_contract(void) {
  static const struct check_entry entries[] = {
      {"pa_malloc", pa_malloc, pa_free},
      {"pa_calloc(n, 1)", calloc_count, pa_free},
      {"pa_calloc(1, n)", calloc_size, pa_free},
      {"pa_realloc(NULL, n)", realloc_fresh, pa_free},
      {"pa_realloc grown", realloc_grown, pa_free},
      {"pa_realloc shrunk", realloc_shrunk, pa_free},
      {"pa_aligned_alloc(16, n)", aligned16, pa_free},
      {"pa_mem_malloc", pa_mem_malloc, pa_mem_free},
      {"pa_mem_calloc", mem_calloc, pa_mem_free},
      {"pa_mem_realloc", mem_realloc, pa_mem_free},
      {"pa_raw_malloc", pa_raw_malloc, pa_raw_free},
      {"pa_raw_calloc", raw_calloc_size, pa_raw_free},
      {"pa_raw_realloc", raw_realloc_shrunk, pa_raw_free},
  };
  CHECK_ALIGNMENT_SWEEPS(entries);
}

/* Every class boundary, and every quarter of each doubling up to 64 MiB:
 * n - 1, n and n + 1 bytes each hold what is written into them (a sample
 * of their bytes, denser at the start, and the last), report a usable size
 * that covers them, and keep their bytes through a realloc to the next
 * size and back. */
static size_t next_boundary(size_t n) {
  if (n < PA_SMALL_REQUEST_THRESHOLD) return n + 16;
  size_t quarter = ((size_t)1 << (63 - __builtin_clzll(n))) / 4;
  return n + quarter;
}

static bool holds_sparse(const unsigned char *p, size_t n, unsigned char seed) {
  for (size_t i = 0; i < n; i += 1 + i / 64)
    if (p[i] != (unsigned char)(seed + i)) return false;
  return p[n - 1] == (unsigned char)(seed + n - 1);
}

static void fill_sparse(unsigned char *p, size_t n, unsigned char seed) {
  for (size_t i = 0; i < n; i += 1 + i / 64) p[i] = (unsigned char)(seed + i);
  p[n - 1] = (unsigned char)(seed + n - 1);
}

static void test_class_boundaries(void) {
  size_t failures = 0;
  for (size_t boundary = 16; boundary <= ((size_t)64 << 20); boundary = next_boundary(boundary)) {
    for (size_t n = boundary - 1; n <= boundary + 1; n++) {
      unsigned char *p = pa_malloc(n);
      if (p == NULL) {
        failures++;
        continue;
      }
      fill_sparse(p, n, (unsigned char)n);
      failures += pa_usable_size(p) < n || !holds_sparse(p, n, (unsigned char)n);
      size_t bigger = next_boundary(boundary) + 1;
      p = pa_realloc(p, bigger);
      failures += p == NULL || !holds_sparse(p, n, (unsigned char)n) || pa_usable_size(p) < bigger;
      if (p) p = pa_realloc(p, n);
      failures += p == NULL || !holds_sparse(p, n, (unsigned char)n);
      pa_free(p);
    }
  }
  CHECK_EQ(failures, 0);
}

static void test_usable_size_and_foreign(void) {
  CHECK_EQ(pa_usable_size(NULL), 0);
  for (size_t n = 1; n < 10000; n += 37) {
    void *p = pa_malloc(n);
    CHECK(pa_usable_size(p) >= n);
    pa_free(p);
  }
  pa_free(NULL);
  struct pa_stats before, after;
  pa_stats_get(&before);
  void *foreign = malloc(64); /* not ours: pa_free hands it to the raw layer */
  pa_free(foreign);
  pa_stats_get(&after);
  CHECK_EQ(after.raw_frees, before.raw_frees + 1);
}

/* Every map fails: requests that need a new arena get NULL and ENOMEM, the
 * arenas already held keep serving, and once the OS gives memory again the
 * same request succeeds. */
static void test_exhaustion(void) {
  pa_collect(); /* no wholly free arena left warm by the tests before */
  void *keep = pa_malloc(8);
  struct pa_stats before, after;
  pa_stats_get(&before);
  _pa_os_fail_after(0);
  void *blocks[64 * PA_POOLS_PER_ARENA];
  size_t got = 0;
  errno = 0;
  void *p;
  while (got < sizeof blocks / sizeof *blocks && (p = pa_malloc(500)) != NULL) blocks[got++] = p;
  CHECK_EQ(errno, ENOMEM);
  CHECK(got < sizeof blocks / sizeof *blocks);
  pa_stats_get(&after);
  CHECK_EQ(after.arenas_allocated_total, before.arenas_allocated_total);
  CHECK_EQ(after.classes[pa_domain_class(PA_DOMAIN_MEM, 500)].blocks_in_use, got);
  void *small = pa_malloc(8); /* its pool has room: served */
  CHECK(small != NULL);
  _pa_os_fail_after(-1);
  p = pa_malloc(500);
  CHECK(p != NULL);
  pa_free(p);
  pa_free(small);
  for (size_t i = 0; i < got; i++) pa_free(blocks[i]);
  pa_free(keep);
  pa_collect();
  pa_stats_get(&after);
  CHECK_EQ(after.arenas_current, 0);
  CHECK_EQ(after.bytes_in_use, 0);
}

int main(void) {
  test_realloc();
  test_class_boundaries();
  test_calloc();
  test_huge_sizes();
  test_alignment();
  test_alignment_contract();
  test_usable_size_and_foreign();
  test_exhaustion();
  return check_done();
}
