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

int main(void) {
  test_own_blocks();
  test_large_spans();
  test_foreign_pointers();
  test_released_arena_forgotten();
  return check_done();
}
