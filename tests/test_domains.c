/* Domains and pluggable allocators: which layer serves each domain, wrappers
 * that count and fail on purpose, restoring, and the arena allocator. */
#include <errno.h>
#include <poolalloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* ---- A counting wrapper: does its own work, then calls the previous one. */

struct counter {
  pa_allocator previous;
  size_t mallocs, callocs, reallocs, frees;
  long fail_after; /* calls left before malloc fails with ENOMEM; -1 never */
};

static void *counting_malloc(void *ctx, size_t size) {
  struct counter *c = ctx;
  c->mallocs++;
  if (c->fail_after == 0) {
    errno = ENOMEM;
    return NULL;
  }
  if (c->fail_after > 0) c->fail_after--;
  return c->previous.malloc(c->previous.ctx, size);
}
static void *counting_calloc(void *ctx, size_t count, size_t size) {
  struct counter *c = ctx;
  c->callocs++;
  return c->previous.calloc(c->previous.ctx, count, size);
}
static void *counting_realloc(void *ctx, void *p, size_t size) {
  struct counter *c = ctx;
  c->reallocs++;
  return c->previous.realloc(c->previous.ctx, p, size);
}
static void counting_free(void *ctx, void *p) {
  struct counter *c = ctx;
  c->frees++;
  c->previous.free(c->previous.ctx, p);
}

static void counter_install(struct counter *c, pa_domain domain) {
  memset(c, 0, sizeof *c);
  c->fail_after = -1;
  CHECK_EQ(pa_get_allocator(domain, &c->previous), 0);
  pa_allocator wrapper = {c, counting_malloc, counting_calloc, counting_realloc, counting_free};
  CHECK_EQ(pa_set_allocator(domain, &wrapper), 0);
}

static void test_defaults(void) {
  pa_allocator a;
  for (int d = PA_DOMAIN_RAW; d <= PA_DOMAIN_OBJ; d++) {
    CHECK_EQ(pa_get_allocator((pa_domain)d, &a), 0);
    CHECK(a.malloc && a.calloc && a.realloc && a.free);
  }
  errno = 0;
  CHECK_EQ(pa_get_allocator((pa_domain)3, &a), -1);
  CHECK_EQ(errno, EINVAL);
  pa_allocator incomplete = a;
  incomplete.free = NULL;
  errno = 0;
  CHECK_EQ(pa_set_allocator(PA_DOMAIN_MEM, &incomplete), -1);
  CHECK_EQ(errno, EINVAL);
  CHECK_EQ(pa_set_allocator((pa_domain)-1, &a), -1);

  /* OBJ and MEM come from the pools, RAW from the C library */
  struct pa_stats s0, s1;
  pa_stats_get(&s0);
  void *o = pa_obj_malloc(24), *m = pa_mem_malloc(24), *r = pa_raw_malloc(24);
  pa_stats_get(&s1);
  CHECK_EQ(s1.small_allocations - s0.small_allocations, 2);
  CHECK_EQ(s1.raw_allocations - s0.raw_allocations, 1);
  CHECK_EQ(pa_usable_size(o), (24 + s1.alignment - 1) / s1.alignment * s1.alignment);
  pa_obj_free(o);
  pa_mem_free(m);
  pa_raw_free(r);
  pa_stats_get(&s0);
  CHECK_EQ(s0.raw_frees - s1.raw_frees, 1);
  /* calloc and realloc of each domain */
  char *z = pa_obj_calloc(10, 10);
  CHECK(z && z[0] == 0 && z[99] == 0);
  z = pa_obj_realloc(z, 1000);
  CHECK(z && z[99] == 0);
  pa_obj_free(z);
  z = pa_raw_calloc(3, 3);
  CHECK(z && z[8] == 0);
  z = pa_raw_realloc(z, 30);
  CHECK(z && z[8] == 0);
  pa_raw_free(z);
  errno = 0;
  CHECK(pa_raw_calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(pa_obj_calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
}

static void test_counting_wrapper(void) {
  struct counter c;
  counter_install(&c, PA_DOMAIN_MEM);
  char *p = pa_malloc(10);
  strcpy(p, "wrapped");
  p = pa_realloc(p, 100);
  CHECK(strcmp(p, "wrapped") == 0);
  char *q = pa_calloc(4, 4);
  CHECK(q[15] == 0);
  pa_free(q);
  pa_free(p);
  pa_free(NULL);
  CHECK_EQ(c.mallocs, 1);
  CHECK_EQ(c.callocs, 1);
  CHECK_EQ(c.reallocs, 1);
  CHECK_EQ(c.frees, 3);
  /* OBJ is another domain: not counted */
  pa_obj_free(pa_obj_malloc(8));
  CHECK_EQ(c.mallocs, 1);
  /* aligned allocations are served below the wrapper, freed through it */
  void *aligned = pa_aligned_alloc(64, 100);
  CHECK(aligned && ((uintptr_t)aligned & 63) == 0);
  CHECK(pa_usable_size(aligned) >= 100);
  pa_free(aligned);
  CHECK_EQ(c.frees, 4);

  /* a second wrapper on top; restoring the first's predecessor drops both */
  struct counter outer;
  counter_install(&outer, PA_DOMAIN_MEM);
  pa_free(pa_malloc(5));
  CHECK_EQ(outer.mallocs, 1);
  CHECK_EQ(c.mallocs, 2);
  CHECK_EQ(pa_set_allocator(PA_DOMAIN_MEM, &c.previous), 0);
  pa_free(pa_malloc(5));
  CHECK_EQ(outer.mallocs, 1);
  CHECK_EQ(c.mallocs, 2);
  pa_allocator now;
  pa_get_allocator(PA_DOMAIN_MEM, &now);
  CHECK(memcmp(&now, &c.previous, sizeof now) == 0);
}

/* A fault injector: the third allocation fails; the caller sees ENOMEM. */
static void test_failing_wrapper(void) {
  struct counter c;
  counter_install(&c, PA_DOMAIN_OBJ);
  c.fail_after = 2;
  void *a = pa_obj_malloc(16), *b = pa_obj_malloc(16);
  errno = 0;
  void *fails = pa_obj_malloc(16);
  CHECK(a && b && fails == NULL && errno == ENOMEM);
  pa_obj_free(a);
  pa_obj_free(b);
  CHECK_EQ(c.frees, 2);
  CHECK_EQ(pa_set_allocator(PA_DOMAIN_OBJ, &c.previous), 0);
  void *works = pa_obj_malloc(16);
  CHECK(works != NULL);
  pa_obj_free(works);
}

/* A RAW wrapper sees the RAW domain's calls only: MEM's large requests
 * are poolalloc's own spans, and the raw layer serves none of them. */
static void test_raw_sees_raw_only(void) {
  struct counter c;
  counter_install(&c, PA_DOMAIN_RAW);
  struct pa_stats s0, s1;
  pa_stats_get(&s0);
  size_t LARGE = s0.large_request_threshold + 1000;
  void *large = pa_malloc(LARGE);
  void *aligned = pa_aligned_alloc(s0.arena_size, 100);
  pa_stats_get(&s1);
  CHECK_EQ(c.mallocs, 0);
  CHECK_EQ(s1.raw_allocations - s0.raw_allocations, 0); /* poolalloc's own: a span each */
  CHECK_EQ(s1.large_blocks - s0.large_blocks, 2);
  CHECK_EQ(s1.domains[PA_DOMAIN_MEM].large_allocations - s0.domains[PA_DOMAIN_MEM].large_allocations, 2);
  CHECK(pa_usable_size(large) >= LARGE);
  pa_free(large);
  pa_free(aligned);
  CHECK_EQ(c.frees, 0);
  void *r = pa_raw_malloc(10);
  r = pa_raw_realloc(r, 20);
  pa_raw_free(r);
  CHECK_EQ(c.mallocs, 1);
  CHECK_EQ(c.reallocs, 1);
  CHECK_EQ(c.frees, 1);
  pa_set_allocator(PA_DOMAIN_RAW, &c.previous);
}

/* ---- Arena allocator: memory from the C library, deliberately unaligned. */

struct arena_source {
  size_t allocs, frees, live_bytes;
  void *last;
  bool fail;
};

static void *source_alloc(void *ctx, size_t size) {
  struct arena_source *s = ctx;
  if (s->fail) return NULL;
  char *raw = malloc(size + 64);
  if (raw == NULL) return NULL;
  s->allocs++;
  s->live_bytes += size;
  memcpy(raw, &size, sizeof size);
  return s->last = raw + 64; /* never aligned to the arena size */
}

static void source_free(void *ctx, void *p, size_t size) {
  struct arena_source *s = ctx;
  size_t recorded;
  memcpy(&recorded, (char *)p - 64, sizeof recorded);
  CHECK_EQ(recorded, size); /* released with the size it was obtained with */
  s->frees++;
  s->live_bytes -= size;
  free((char *)p - 64);
}

static void test_arena_allocator(void) {
  pa_arena_allocator original, source_api;
  pa_get_arena_allocator(&original);
  CHECK(original.alloc && original.free);
  static struct arena_source source;
  source_api = (pa_arena_allocator){&source, source_alloc, source_free};
  CHECK_EQ(pa_set_arena_allocator(&source_api), 0);
  pa_arena_allocator bad = {NULL, NULL, source_free};
  CHECK_EQ(pa_set_arena_allocator(&bad), -1);

  /* enough blocks to need new arenas */
  struct pa_stats s0, s1;
  pa_stats_get(&s0);
  size_t per_arena = s0.arena_size / s0.pool_size * ((s0.pool_size - 48) / 256);
  size_t n = per_arena * 3;
  void **blocks = malloc(n * sizeof *blocks);
  for (size_t i = 0; i < n; i++) {
    blocks[i] = pa_malloc(256);
    memset(blocks[i], (int)i, 256);
  }
  pa_stats_get(&s1);
  size_t fresh = s1.arenas_allocated_total - s0.arenas_allocated_total;
  CHECK(fresh >= 2);
  /* each unaligned answer was given back and taken again at twice the size */
  CHECK_EQ(source.allocs, 2 * fresh);
  CHECK_EQ(source.frees, fresh);
  CHECK_EQ(source.live_bytes, fresh * 2 * s0.arena_size);
  bool intact = true;
  for (size_t i = 0; i < n; i++) intact &= ((unsigned char *)blocks[i])[255] == (unsigned char)i;
  CHECK(intact);

  /* a failing source: NULL with ENOMEM once new arenas are needed */
  source.fail = true;
  size_t extra = 0;
  void **more = malloc(n * sizeof *more);
  errno = 0;
  while (extra < n && (more[extra] = pa_malloc(256)) != NULL) extra++;
  CHECK(extra < n);
  CHECK_EQ(errno, ENOMEM);
  source.fail = false;
  CHECK_EQ(pa_set_arena_allocator(&original), 0);
  for (size_t i = 0; i < extra; i++) pa_free(more[i]);
  for (size_t i = 0; i < n; i++) pa_free(blocks[i]);
  pa_collect();
  /* arenas go back through the allocator that made them */
  CHECK_EQ(source.live_bytes, 0);
  CHECK_EQ(source.frees, source.allocs);
  free(more);
  free(blocks);
}

int main(void) {
  test_defaults();
  test_counting_wrapper();
  test_failing_wrapper();
  test_raw_sees_raw_only();
  test_arena_allocator();
  return check_done();
}
