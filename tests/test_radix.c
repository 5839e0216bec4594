/* Ownership lookup: exact for our blocks, NULL for everything else, and it
 * never reads the memory it is asked about (the probes below point at
 * unmapped and kernel addresses). */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "check.h"
#include "inline.h"

static int static_variable;

static void test_own_blocks(void) {
  void *small = pa_malloc(64);
  pa_arena *arena = pa_arena_of(small);
  CHECK(arena != NULL);
  CHECK((uintptr_t)small - arena->base < PA_ARENA_SIZE);
  CHECK_EQ(arena->base % PA_ARENA_SIZE, 0);
  /* every byte of the arena maps to it, the bytes around it do not */
  CHECK(pa_arena_of((void *)arena->base) == arena);
  CHECK(pa_arena_of((void *)(arena->base + PA_ARENA_SIZE - 1)) == arena);
  CHECK(pa_arena_of((void *)(arena->base - 1)) != arena);
  CHECK(pa_arena_of((void *)(arena->base + PA_ARENA_SIZE)) != arena);
  pa_free(small);
}

/* A large block's span answers for every byte of its chunks, with the
 * record of its block. */
static void test_large_spans(void) {
  size_t size = 3 * PA_ARENA_SIZE + 100;
  char *large = pa_malloc(size);
  pa_arena *span = pa_arena_of(large);
  CHECK(span != NULL && span->large_size >= size);
  CHECK_EQ((uintptr_t)large % PA_ARENA_SIZE, 0);
  for (size_t i = 0; i < 4; i++) CHECK(pa_arena_of(large + i * PA_ARENA_SIZE + 77) == span);
  CHECK(pa_arena_of(large - 1) != span);
  pa_free(large);
}

static void test_foreign_pointers(void) {
  int local = 0;
  void *libc_block = malloc(32);
  CHECK(pa_arena_of(NULL) == NULL);
  CHECK(pa_arena_of(&local) == NULL);
  CHECK(pa_arena_of(&static_variable) == NULL);
  CHECK(pa_arena_of(libc_block) == NULL);
  CHECK(pa_arena_of((void *)(uintptr_t)-1) == NULL);
  CHECK(pa_arena_of((void *)((uintptr_t)1 << 47)) == NULL);
  CHECK(pa_arena_of((void *)((uintptr_t)1 << 60)) == NULL);
  void *unmapped = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(pa_arena_of(unmapped) == NULL);
  munmap(unmapped, 4096);
  free(libc_block);
}

static void test_released_arena_forgotten(void) {
  void *p = pa_malloc(200);
  uintptr_t base = pa_arena_of(p)->base;
  struct pa_stats s;
  pa_stats_get(&s);
  size_t leaves = s.radix_leaves; /* 1, or more where a large span was mapped far away */
  pa_free(p);
  pa_collect(); /* nothing else lives: the arena goes back to the OS */
  pa_stats_get(&s);
  CHECK_EQ(s.arenas_current, 0);
  CHECK(pa_arena_of((void *)base) == NULL);
  CHECK(leaves >= 1);
  CHECK_EQ(s.radix_leaves, leaves); /* leaves stay; they are reused */
}

/* Arenas asked for 64 GiB away from the first: outside the first leaf, at
 * the same place in their leaf as an arena of the first (the free fast
 * path must compare the root, not only read the first leaf).  Valgrind
 * places mappings where it likes, hint or not: `elsewhere` counts those. */
struct far_source {
  uintptr_t next;
  size_t live_bytes, elsewhere;
};

static void *far_alloc(void *ctx, size_t size) {
  struct far_source *s = ctx;
  void *p = mmap((void *)s->next, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  if ((uintptr_t)p != s->next) s->elsewhere++;
  s->next = (uintptr_t)p + size;
  s->live_bytes += size;
  return p;
}

static void far_free(void *ctx, void *p, size_t size) {
  struct far_source *s = ctx;
  munmap(p, size);
  s->live_bytes -= size;
}

/* A layer on top of MEM that passes every call to the one below. */
static void *passing_malloc(void *ctx, size_t size) {
  pa_allocator *below = ctx;
  return below->malloc(below->ctx, size);
}
static void *passing_calloc(void *ctx, size_t n, size_t size) {
  pa_allocator *below = ctx;
  return below->calloc(below->ctx, n, size);
}
static void *passing_realloc(void *ctx, void *p, size_t size) {
  pa_allocator *below = ctx;
  return below->realloc(below->ctx, p, size);
}
static void passing_free(void *ctx, void *p) {
  pa_allocator *below = ctx;
  below->free(below->ctx, p);
}

/* The free fast path's lookup answers for blocks of the first leaf while
 * the default layers serve; a layer on top, or an arena outside the first
 * leaf, sends the free the domain's way, and the block still comes back. */
static void test_free_fast_path(void) {
  void *near = pa_malloc(64);
  CHECK(pa_arena_of_fast(near) != NULL && pa_arena_of_fast(near) == pa_arena_of(near));
  CHECK(pa_arena_of_fast(NULL) == NULL);
  static pa_allocator below;
  CHECK_EQ(pa_get_allocator(PA_DOMAIN_MEM, &below), 0);
  pa_allocator passing = {&below, passing_malloc, passing_calloc, passing_realloc, passing_free};
  CHECK_EQ(pa_set_allocator(PA_DOMAIN_MEM, &passing), 0);
  CHECK(pa_arena_of_fast(near) == NULL);
  CHECK_EQ(pa_set_allocator(PA_DOMAIN_MEM, &below), 0);
  CHECK(pa_arena_of_fast(near) == pa_arena_of(near));

  pa_arena_allocator original;
  pa_get_arena_allocator(&original);
  uintptr_t near_root = (uintptr_t)near >> (PA_ARENA_BITS + PA_RADIX_LEAF_BITS);
  static struct far_source far;
  uintptr_t away = (uintptr_t)64 << 30, near_base = pa_arena_of(near)->base;
  far = (struct far_source){.next = near_base > 2 * away ? near_base - away : near_base + away};
  pa_arena_allocator far_api = {&far, far_alloc, far_free};
  CHECK_EQ(pa_set_arena_allocator(&far_api), 0);
  enum { N = 4 * 1024 };
  static unsigned char *blocks[N];
  size_t far_blocks = 0, slow_lookups = 0;
  struct pa_stats s0, s1;
  pa_stats_get(&s0);
  for (size_t i = 0; i < N; i++) {
    blocks[i] = pa_malloc(256);
    if (blocks[i] == NULL) break;
    blocks[i][255] = (unsigned char)i;
    if ((uintptr_t)blocks[i] >> (PA_ARENA_BITS + PA_RADIX_LEAF_BITS) == near_root) continue;
    far_blocks++;
    if (pa_arena_of_fast(blocks[i]) == NULL && pa_arena_of(blocks[i]) != NULL) slow_lookups++;
  }
  CHECK_EQ(pa_set_arena_allocator(&original), 0);
  CHECK(blocks[N - 1] != NULL); /* the far arenas could be mapped */
  if (blocks[N - 1] == NULL) return;
  if (far.elsewhere) fprintf(stderr, "test_radix: far arenas mapped elsewhere (valgrind?): not checked\n");
  else CHECK(far_blocks > 0);
  CHECK_EQ(slow_lookups, far_blocks);
  bool intact = true;
  for (size_t i = 0; i < N; i++) intact &= blocks[i][255] == (unsigned char)i;
  CHECK(intact);
  for (size_t i = 0; i < N; i++) pa_free(blocks[i]);
  pa_stats_get(&s1);
  CHECK_EQ(s1.small_frees - s0.small_frees, N);
  pa_free(near);
  pa_collect(); /* every far block came back: its arenas go back too */
  CHECK_EQ(far.live_bytes, 0);
}

int main(void) {
  test_own_blocks();
  test_large_spans();
  test_foreign_pointers();
  test_released_arena_forgotten();
  test_free_fast_path();
  return check_done();
}
