/* Arenas: the usable list stays ordered by free pools through any sequence
 * of takes and returns, wholly free arenas go back to the OS (seen in
 * /proc/self/maps) once their decay delay is over, are taken back warm
 * before it, and one spare stops an alloc/free loop at an arena boundary
 * from mapping and unmapping each time. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "inline.h"

/* Read with open and read, into a static buffer: under Valgrind, the
 * malloc fopen would call may map memory where a released arena was. */
static bool mapped(uintptr_t address) {
  static char maps[1 << 16];
  int fd = open("/proc/self/maps", O_RDONLY);
  size_t length = 0;
  ssize_t n;
  while (length < sizeof maps - 1 && (n = read(fd, maps + length, sizeof maps - 1 - length)) > 0)
    length += (size_t)n;
  close(fd);
  maps[length] = '\0';
  for (char *line = maps; line; line = strchr(line, '\n')) {
    unsigned long lo, hi;
    if (*line == '\n') line++;
    if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && address >= lo && address < hi) return true;
  }
  return false;
}

static bool order_holds(void) {
  _pa_arenas_lock();
  bool ok = _pa_arenas_check_order();
  _pa_arenas_unlock();
  return ok;
}

static struct pa_stats stats(void) {
  struct pa_stats s;
  pa_stats_get(&s);
  return s;
}

#define ARENAS 4
#define TAKEN (ARENAS * PA_POOLS_PER_ARENA - 5)

static void sleep_ms(long ms) {
  struct timespec t = {0, ms * 1000000};
  nanosleep(&t, NULL);
}

/* With no decay (as in CPython), every wholly free arena but the spare is
 * released the moment its last pool comes back. */
static void test_order_and_release(void) {
  long decay = pa_arena_decay_ms(0);
  static pa_pool *pools[TAKEN];
  uintptr_t bases[ARENAS];
  size_t arenas_seen = 0;
  for (size_t i = 0; i < TAKEN; i++) {
    pa_arena *head = _pa_arenas_usable_head();
    pools[i] = _pa_arena_take_run(1, 1);
    CHECK(pools[i] != NULL);
    pa_arena *arena = pa_arena_of(pools[i]->start);
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
    _pa_arena_return_run(pools[i]);
    always_ordered &= order_holds();
  }
  CHECK(always_ordered);

  struct pa_stats s = stats();
  CHECK_EQ(s.arenas_current, 1); /* the spare */
  CHECK_EQ(s.arenas_released, ARENAS - 1);
  size_t still_mapped = 0;
  for (size_t i = 0; i < ARENAS; i++) still_mapped += mapped(bases[i]);
  CHECK_EQ(still_mapped, 1);

  _pa_arenas_release_empty();
  CHECK_EQ(stats().arenas_current, 0);
  still_mapped = 0;
  for (size_t i = 0; i < ARENAS; i++) still_mapped += mapped(bases[i]);
  CHECK_EQ(still_mapped, 0);
  pa_arena_decay_ms(decay);
}

/* Runs: contiguous, on a multiple of their alignment, off the free-pool
 * mask while taken and back on it after; the list stays ordered. */
static void test_runs(void) {
  static const unsigned shapes[][2] = {{2, 1}, {8, 2}, {3, 1}, {16, 16}, {5, 4}, {32, 16}};
  pa_pool *runs[sizeof shapes / sizeof *shapes];
  for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
    runs[i] = _pa_arena_take_run(shapes[i][0], shapes[i][1]);
    pa_arena *arena = pa_arena_of(runs[i]->start);
    unsigned index = (unsigned)(runs[i] - arena->pools);
    CHECK_EQ(index % shapes[i][1], 0);
    CHECK_EQ(runs[i]->run_pools, shapes[i][0]);
    for (unsigned k = 0; k < shapes[i][0]; k++) {
      CHECK_EQ((arena->free_pools >> (index + k)) & 1, 0);
      CHECK_EQ(pa_run_index(arena, index + k), k);
    }
    CHECK(order_holds());
  }
  for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
    pa_arena *arena = pa_arena_of(runs[i]->start);
    unsigned index = (unsigned)(runs[i] - arena->pools), length = shapes[i][0];
    _pa_arena_return_run(runs[i]);
    for (unsigned k = 0; k < length; k++) CHECK_EQ((arena->free_pools >> (index + k)) & 1, 1);
    CHECK(order_holds());
  }
  _pa_arenas_release_empty();
}

static void take_all(pa_pool **pools, size_t n) {
  for (size_t i = 0; i < n; i++) pools[i] = _pa_arena_take_run(1, 1);
}
static void return_all(pa_pool **pools, size_t n) {
  for (size_t i = 0; i < n; i++) _pa_arena_return_run(pools[i]);
}

/* Wholly free arenas wait out the delay, are taken back (no new map)
 * before it ends, and go at the first arena event after it, or when the
 * sampling thread calls _pa_arenas_decay_idle; the newest stays as the spare. */
static void test_decay(void) {
  static pa_pool *pools[3 * PA_POOLS_PER_ARENA];
  size_t n = 3 * PA_POOLS_PER_ARENA;
  CHECK_EQ(pa_arena_decay_ms(-1), PA_ARENA_DECAY_DEFAULT_MS);
  long decay = pa_arena_decay_ms(60000);
  CHECK_EQ(pa_arena_decay_ms(-1), 60000);
  errno = 0;
  CHECK_EQ(pa_arena_decay_ms(-5), 60000);
  CHECK_EQ(errno, EINVAL);
  CHECK_EQ(pa_arena_decay_ms(PA_ARENA_DECAY_MAX_MS + 1), 60000);
  CHECK_EQ(pa_arena_decay_ms(-1), 60000);

  take_all(pools, n);
  struct pa_stats before = stats();
  CHECK_EQ(before.arenas_current, 3);
  return_all(pools, n);
  CHECK_EQ(stats().arenas_current, 3);
  CHECK(order_holds());
  take_all(pools, n); /* the same arenas again: nothing mapped */
  CHECK_EQ(stats().arenas_allocated_total, before.arenas_allocated_total);
  return_all(pools, n);

  pa_arena_decay_ms(10);
  sleep_ms(30);
  CHECK_EQ(stats().arenas_current, 3); /* nothing happened to release them */
  _pa_arena_return_run(_pa_arena_take_run(1, 1));
  struct pa_stats after = stats();
  CHECK_EQ(after.arenas_current, 1);
  CHECK_EQ(after.arenas_released, before.arenas_released + 2);
  CHECK(order_holds());

  pa_arena_decay_ms(60000);
  take_all(pools, n);
  return_all(pools, n);
  CHECK_EQ(stats().arenas_current, 3);
  pa_arena_decay_ms(10);
  sleep_ms(30);
  _pa_arenas_decay_idle();
  CHECK_EQ(stats().arenas_current, 1);
  _pa_arenas_release_empty();
  CHECK_EQ(stats().arenas_current, 0);
  CHECK(order_holds());
  pa_arena_decay_ms(decay);
}

static void test_boundary_hysteresis(void) {
  long decay = pa_arena_decay_ms(0);
  static pa_pool *full[PA_POOLS_PER_ARENA];
  for (size_t i = 0; i < PA_POOLS_PER_ARENA; i++) full[i] = _pa_arena_take_run(1, 1);
  size_t before = stats().arenas_allocated_total;
  for (int i = 0; i < 1000; i++) _pa_arena_return_run(_pa_arena_take_run(1, 1));
  struct pa_stats s = stats();
  CHECK_EQ(s.arenas_allocated_total, before + 1); /* one map, not a thousand */
  CHECK_EQ(s.arenas_current, 2);
  /* Now the first arena becomes wholly free too: only one spare is kept. */
  for (size_t i = 0; i < PA_POOLS_PER_ARENA; i++) _pa_arena_return_run(full[i]);
  CHECK_EQ(stats().arenas_current, 1);
  CHECK(order_holds());
  _pa_arenas_release_empty();
  pa_arena_decay_ms(decay);
}

/* The same through the public API: a burst of 256-byte blocks filling
 * five arenas, all freed, leaves nothing mapped after pa_collect(). */
static void test_public_api_returns_memory(void) {
  size_t N = 5 * PA_POOLS_PER_ARENA * pa_pool_capacity(256);
  void **blocks = pa_malloc(N * sizeof *blocks);
  for (size_t i = 0; i < N; i++) blocks[i] = pa_malloc(256);
  struct pa_stats s = stats();
  CHECK(s.arenas_current >= 5);
  CHECK_EQ(s.classes[pa_domain_class(PA_DOMAIN_MEM, 256)].blocks_in_use, N);
  for (size_t i = 0; i < N; i++) pa_free(blocks[i]);
  pa_free(blocks);
  s = stats();
  /* the heap keeps the last two runs of the 256-byte class in its list,
   * and the run of the class of the array (src/pool.c); the arenas wholly
   * free wait out their decay, or pa_collect */
  CHECK_EQ(s.pools_used, 2 * _pa_class_run_pools((unsigned)pa_domain_class(PA_DOMAIN_MEM, 256)) +
                             _pa_class_run_pools((unsigned)pa_medium_class(N * sizeof *blocks)));
  pa_collect();
  s = stats();
  CHECK_EQ(s.arenas_current, 0);
  CHECK_EQ(s.arenas_released, s.arenas_allocated_total);
}

/* A walk (statistics, the heap map) may meet a run between two steps of
 * its setup, which its owner makes without the lock: a later pool marked
 * as the run's before its serving entry points to the first, and a first
 * pool marked used before it has its class and heap.  Such pools show as
 * empty, and nothing is counted for a class. */
static void test_walk_mid_setup(void) {
  pa_pool *run = _pa_arena_take_run(4, 1);
  pa_arena *arena = pa_arena_of(run->start);
  unsigned index = (unsigned)(run - arena->pools);
  struct pa_stats before = stats();
  arena->serving[index + 2] = pa_serving_offset(index + 2); /* between the two stores */
  run[2].size_class = PA_CLASS_NONE;
  uint8_t state = run->state;
  run->state = PA_POOL_USED; /* pool_init between its stores */
  run->size_class = PA_CLASS_NONE;
  run->owner = NULL;
  struct pa_stats during = stats();
  CHECK_EQ(during.pools_used + during.pools_full, before.pools_used + before.pools_full);
  CHECK_EQ(during.bytes_in_use, before.bytes_in_use);
  CHECK_EQ(during.bytes_available, before.bytes_available);
  CHECK_EQ(during.pools_empty + during.pools_untouched, before.pools_empty + before.pools_untouched);
  arena->serving[index + 2] = pa_serving_offset(index);
  run->state = state;
  _pa_arena_return_run(run);
  _pa_arenas_release_empty();
}

int main(void) {
  test_order_and_release();
  test_runs();
  test_walk_mid_setup();
  test_decay();
  test_boundary_hysteresis();
  test_public_api_returns_memory();
  return check_done();
}
