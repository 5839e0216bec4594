/* Arenas: the usable list stays ordered by free pools through any sequence
 * of takes and returns, wholly free arenas go back to the OS (seen in
 * /proc/self/maps), and one spare stops an alloc/free loop at an arena
 * boundary from mapping and unmapping each time. */
#include <stdlib.h>

#include "check.h"
#include "internal.h"

static bool mapped(uintptr_t address) {
  FILE *maps = fopen("/proc/self/maps", "r");
  unsigned long lo, hi;
  char line[512];
  bool found = false;
  while (!found && fgets(line, sizeof line, maps))
    if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && address >= lo && address < hi) found = true;
  fclose(maps);
  return found;
}

static bool order_holds(void) {
  arenas_lock();
  bool ok = arenas_check_order();
  arenas_unlock();
  return ok;
}

static struct pa_stats stats(void) {
  struct pa_stats s;
  pa_stats_get(&s);
  return s;
}

#define ARENAS 4
#define TAKEN (ARENAS * PA_POOLS_PER_ARENA - 5)

static void test_order_and_release(void) {
  static pa_pool *pools[TAKEN];
  uintptr_t bases[ARENAS];
  size_t arenas_seen = 0;
  for (size_t i = 0; i < TAKEN; i++) {
    pa_arena *head = arenas_usable_head();
    pools[i] = arena_take_pool();
    CHECK(pools[i] != NULL);
    pa_arena *arena = pa_arena_of(pools[i]);
    if (head) CHECK(arena == head); /* pools come from the fullest arena */
    if (i % PA_POOLS_PER_ARENA == 0) bases[arenas_seen++] = arena->base;
  }
  CHECK_EQ(arenas_seen, ARENAS);
  CHECK_EQ(stats().arenas_current, ARENAS);
  CHECK(order_holds());

  /* Return pools in a shuffled order; the order must hold at every step. */
  unsigned long long seed = 42;
  for (size_t i = TAKEN - 1; i > 0; i--) {
    size_t j = check_random(&seed) % (i + 1);
    pa_pool *t = pools[i];
    pools[i] = pools[j];
    pools[j] = t;
  }
  bool always_ordered = true;
  for (size_t i = 0; i < TAKEN; i++) {
    arena_return_pool(pools[i]);
    always_ordered &= order_holds();
  }
  CHECK(always_ordered);

  struct pa_stats s = stats();
  CHECK_EQ(s.arenas_current, 1); /* the spare */
  CHECK_EQ(s.arenas_released, ARENAS - 1);
  size_t still_mapped = 0;
  for (size_t i = 0; i < ARENAS; i++) still_mapped += mapped(bases[i]);
  CHECK_EQ(still_mapped, 1);

  arena_release_spare();
  CHECK_EQ(stats().arenas_current, 0);
  still_mapped = 0;
  for (size_t i = 0; i < ARENAS; i++) still_mapped += mapped(bases[i]);
  CHECK_EQ(still_mapped, 0);
}

static void test_boundary_hysteresis(void) {
  static pa_pool *full[PA_POOLS_PER_ARENA];
  for (size_t i = 0; i < PA_POOLS_PER_ARENA; i++) full[i] = arena_take_pool();
  size_t before = stats().arenas_allocated_total;
  for (int i = 0; i < 1000; i++) arena_return_pool(arena_take_pool());
  struct pa_stats s = stats();
  CHECK_EQ(s.arenas_allocated_total, before + 1); /* one map, not a thousand */
  CHECK_EQ(s.arenas_current, 2);
  /* Now the first arena becomes wholly free too: only one spare is kept. */
  for (size_t i = 0; i < PA_POOLS_PER_ARENA; i++) arena_return_pool(full[i]);
  CHECK_EQ(stats().arenas_current, 1);
  CHECK(order_holds());
  arena_release_spare();
}

/* The same through the public API: a burst of 256-byte blocks filling
 * five arenas, all freed, leaves nothing mapped after pa_collect(). */
static void test_public_api_returns_memory(void) {
  size_t N = 5 * PA_POOLS_PER_ARENA * pa_pool_capacity(256);
  void **blocks = pa_malloc(N * sizeof *blocks);
  for (size_t i = 0; i < N; i++) blocks[i] = pa_malloc(256);
  struct pa_stats s = stats();
  CHECK(s.arenas_current >= 5);
  CHECK_EQ(s.classes[pa_size_class(256)].blocks_in_use, N);
  for (size_t i = 0; i < N; i++) pa_free(blocks[i]);
  pa_free(blocks);
  s = stats();
  /* at most the spare, and the arena of the pool the heap keeps for the
   * 256-byte class (the last pool of a class is kept, see internal.h) */
  CHECK(s.arenas_current <= 2);
  CHECK_EQ(s.pools_used, 1);
  pa_collect();
  s = stats();
  CHECK_EQ(s.arenas_current, 0);
  CHECK_EQ(s.arenas_released, s.arenas_allocated_total);
}

int main(void) {
  test_order_and_release();
  test_boundary_hysteresis();
  test_public_api_returns_memory();
  return check_done();
}
