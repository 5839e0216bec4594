/* Handles: objects reached through a table, checked handles (freed, forged,
 * another table's, reused slots), pins, and pa_compact: after a random 90%
 * of the objects die, the survivors are packed into ceil(live / capacity)
 * pools per class with their contents intact, pinned objects stay put, and
 * the pools go back.  Tables in several threads at once, and a table handed
 * from thread to thread.
 *
 *   test_handles                 the checks
 *   test_handles misuse_<name>   one misuse (a child whose stderr is read)
 */
#include <errno.h>
#include <poolalloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h"

static size_t capacity_of(size_t block_size) {
  struct pa_stats s;
  pa_stats_get(&s);
  return s.pool_size / block_size;
}

static size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

/* Each object holds its own number and a pattern, checked after moves. */
static void fill(unsigned char *obj, size_t size, uint32_t tag) {
  memcpy(obj, &tag, sizeof tag);
  for (size_t i = sizeof tag; i < size; i++) obj[i] = (unsigned char)(tag * 31 + i);
}

static bool intact(const unsigned char *obj, size_t size, uint32_t tag) {
  uint32_t stored;
  memcpy(&stored, obj, sizeof stored);
  if (stored != tag) return false;
  for (size_t i = sizeof tag; i < size; i++)
    if (obj[i] != (unsigned char)(tag * 31 + i)) return false;
  return true;
}

static void test_basics(void) {
  size_t base = check_pool_blocks_in_use();
  pa_handles *table = pa_handles_create();
  CHECK(table != NULL);
  pa_handle small = pa_handle_alloc(table, 40);
  pa_handle zero = pa_handle_alloc(table, 0);
  pa_handle large = pa_handle_alloc(table, 5000);
  CHECK(small != 0 && zero != 0 && large != 0);
  CHECK(small != zero && zero != large);
  /* laid out by the caller, so 16-byte aligned as malloc's results */
  CHECK_EQ((uintptr_t)pa_handle_get(table, small) % 16, 0);
  CHECK_EQ((uintptr_t)pa_handle_get(table, zero) % 16, 0);
  CHECK_EQ((uintptr_t)pa_handle_get(table, large) % 16, 0);
  fill(pa_handle_get(table, small), 40, 1);
  fill(pa_handle_get(table, large), 5000, 2);
  CHECK(intact(pa_handle_get(table, small), 40, 1));
  CHECK(intact(pa_handle_get(table, large), 5000, 2));
  CHECK(pa_usable_size(pa_handle_get(table, small)) >= 40);
  CHECK(pa_usable_size(pa_handle_get(table, large)) >= 5000);
  CHECK_EQ(check_pool_blocks_in_use(), base + 3); /* 40 and 0 bytes from the table's pools,
                                                      5000 from the thread's */

  /* the table's heap shows in the statistics as a handle table's */
  struct pa_heap_stats heaps[64];
  size_t n = pa_stats_heaps(heaps, 64);
  size_t tables = 0, table_blocks = 0;
  for (size_t i = 0; i < n && i < 64; i++)
    if (heaps[i].handles) {
      tables++;
      table_blocks += heaps[i].bytes_in_use;
    }
  CHECK_EQ(tables, 1);
  CHECK_EQ(table_blocks, check_block16(40) + check_block16(1));

  /* a slot reused after a free gets a new generation: the old handle fails */
  pa_handle_free(table, small);
  pa_handle again = pa_handle_alloc(table, 40);
  CHECK((unsigned)again == (unsigned)small); /* the same slot */
  CHECK(again != small);
  pa_handle_free(table, 0);
  pa_handles_destroy(table);
  pa_handles_destroy(NULL);
  CHECK_EQ(check_pool_blocks_in_use(), base);
}

/* Bad handles give NULL and EINVAL (their reports are checked in children). */
static void test_bad_handles_refused(void) {
  pa_handles *one = pa_handles_create(), *two = pa_handles_create();
  pa_handle h = pa_handle_alloc(one, 24);
  pa_handle_free(one, h);
  pa_handle forged = (pa_handle)7 << 32 | 999999;
  pa_handle *cases[] = {&h, &forged};
  for (size_t i = 0; i < 2; i++) {
    errno = 0;
    CHECK(pa_handle_get(one, *cases[i]) == NULL);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK(pa_handle_pin(one, *cases[i]) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(pa_handle_unpin(one, *cases[i]), -1);
  }
  pa_handle live = pa_handle_alloc(one, 24);
  CHECK(pa_handle_get(two, live) == NULL); /* another table's */
  CHECK(pa_handle_get(one, 0) == NULL);
  pa_handles_destroy(one);
  pa_handles_destroy(two);
}

/* Objects above the small threshold come from the calling thread's pools,
 * not the table's: compaction leaves them where they are, and freeing them
 * gives them back to that thread's pools. */
static void test_larger_objects_stay(void) {
  size_t base = check_pool_blocks_in_use();
  pa_handles *table = pa_handles_create();
  pa_handle big[8], small[64];
  for (uint32_t i = 0; i < 8; i++) {
    big[i] = pa_handle_alloc(table, 3000);
    fill(pa_handle_get(table, big[i]), 3000, i);
  }
  for (int i = 0; i < 64; i++) small[i] = pa_handle_alloc(table, 40);
  for (int i = 0; i < 64; i += 2) pa_handle_free(table, small[i]);
  void *where = pa_handle_get(table, big[3]);
  pa_compact(table, NULL);
  CHECK(pa_handle_get(table, big[3]) == where);
  for (uint32_t i = 0; i < 8; i++) CHECK(intact(pa_handle_get(table, big[i]), 3000, i));
  for (int i = 0; i < 8; i++) pa_handle_free(table, big[i]);
  pa_handles_destroy(table);
  CHECK_EQ(check_pool_blocks_in_use(), base);
}

enum { OBJECTS = 20000 };
static pa_handle handles[OBJECTS];
static size_t sizes[OBJECTS];

/* The table's pools of one block size, from the statistics. */
static size_t table_pools(size_t block_size) {
  struct pa_heap_stats heaps[64];
  size_t n = pa_stats_heaps(heaps, 64), pools = 0;
  for (size_t i = 0; i < n && i < 64; i++)
    if (heaps[i].handles) pools += heaps[i].classes[block_size / (heaps[i].classes[0].block_size) - 1].pools;
  return pools;
}

static void test_compact(void) {
  const size_t small = 48, big = 200;
  size_t base = check_pool_blocks_in_use();
  pa_handles *table = pa_handles_create();
  for (uint32_t i = 0; i < OBJECTS; i++) {
    sizes[i] = i % 4 == 0 ? big : small;
    handles[i] = pa_handle_alloc(table, sizes[i]);
    fill(pa_handle_get(table, handles[i]), sizes[i], i);
  }
  size_t pools_full_heap = table_pools(check_block16(small)) + table_pools(check_block16(big));
  CHECK_EQ(pools_full_heap, ceil_div(OBJECTS * 3 / 4, capacity_of(check_block16(small))) +
                                ceil_div(OBJECTS / 4, capacity_of(check_block16(big))));
  /* a random 90% die */
  unsigned long long rng = 42;
  size_t live_small = 0, live_big = 0;
  for (uint32_t i = 0; i < OBJECTS; i++) {
    if (check_random(&rng) % 10 != 0) {
      pa_handle_free(table, handles[i]);
      handles[i] = 0;
    } else {
      live_small += sizes[i] == small;
      live_big += sizes[i] == big;
    }
  }
  /* one pinned survivor keeps its address */
  uint32_t pinned = 0;
  while (handles[pinned] == 0) pinned++;
  void *pinned_at = pa_handle_pin(table, handles[pinned]);
  size_t pools_before = table_pools(check_block16(small)) + table_pools(check_block16(big));
  struct pa_stats before, after;
  pa_stats_get(&before);

  struct pa_compact_stats c;
  size_t released = pa_compact(table, &c);
  CHECK_EQ(c.handles, live_small + live_big);
  CHECK_EQ(c.objects_pinned, 1);
  CHECK_EQ(c.pools_before, pools_before);
  /* packed: the fewest pools that hold the survivors (one more at most
   * for the class whose pinned object's pool had to stay) */
  size_t least = ceil_div(live_small, capacity_of(check_block16(small))) +
                 ceil_div(live_big, capacity_of(check_block16(big)));
  CHECK(c.pools_after == least || c.pools_after == least + 1);
  CHECK_EQ(table_pools(check_block16(small)) + table_pools(check_block16(big)), c.pools_after);
  CHECK_EQ(c.pools_released, c.pools_before - c.pools_after);
  pa_stats_get(&after);
  CHECK_EQ(released, c.pools_released * after.pool_size);
  CHECK(c.objects_moved > 0);
  CHECK(after.arenas_current < before.arenas_current);
  CHECK_EQ(c.arenas_released, after.arenas_released - before.arenas_released);

  for (uint32_t i = 0; i < OBJECTS; i++)
    if (handles[i]) CHECK(intact(pa_handle_get(table, handles[i]), sizes[i], i));
  CHECK(pa_handle_get(table, handles[pinned]) == pinned_at);
  /* a second compaction finds nothing to move */
  pa_compact(table, &c);
  CHECK_EQ(c.objects_moved, 0);
  CHECK_EQ(c.pools_released, 0);

  CHECK_EQ(pa_handle_unpin(table, handles[pinned]), 0);
  CHECK_EQ(pa_handle_unpin(table, handles[pinned]), -1); /* no longer pinned */
  pa_handles_destroy(table);
  CHECK_EQ(check_pool_blocks_in_use(), base);
}

/* Tables used by several threads at once, and one handed between threads. */
struct churner {
  pa_handles *table;
  uint32_t seed;
  bool ok;
};

static void *churn(void *arg) {
  struct churner *c = arg;
  enum { LIVE = 2000 };
  pa_handle live[LIVE] = {0};
  unsigned long long rng = c->seed;
  c->ok = true;
  for (uint32_t round = 0; round < 20000; round++) {
    size_t slot = check_random(&rng) % LIVE;
    if (live[slot]) {
      c->ok &= intact(pa_handle_get(c->table, live[slot]), 16 + slot % 300, (uint32_t)slot);
      pa_handle_free(c->table, live[slot]);
    }
    live[slot] = pa_handle_alloc(c->table, 16 + slot % 300);
    fill(pa_handle_get(c->table, live[slot]), 16 + slot % 300, (uint32_t)slot);
    if (round % 5000 == 4999) pa_compact(c->table, NULL);
  }
  for (size_t slot = 0; slot < LIVE; slot++)
    if (live[slot]) {
      c->ok &= intact(pa_handle_get(c->table, live[slot]), 16 + slot % 300, (uint32_t)slot);
      pa_handle_free(c->table, live[slot]);
    }
  return NULL;
}

static void test_threads(void) {
  enum { THREADS = 4 };
  size_t base = check_pool_blocks_in_use();
  struct churner c[THREADS];
  pthread_t threads[THREADS];
  for (int i = 0; i < THREADS; i++) {
    c[i] = (struct churner){pa_handles_create(), (uint32_t)i + 1, false};
    pthread_create(&threads[i], NULL, churn, &c[i]);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(threads[i], NULL);
    CHECK(c[i].ok);
  }
  /* the first table again, from another thread than the one that filled it */
  c[0].seed = 99;
  pthread_create(&threads[0], NULL, churn, &c[0]);
  pthread_join(threads[0], NULL);
  CHECK(c[0].ok);
  for (int i = 0; i < THREADS; i++) pa_handles_destroy(c[i].table);
  pa_collect();
  CHECK_EQ(check_pool_blocks_in_use(), base);
}

/* The OS refusing memory: NULL or 0 with ENOMEM, and the table works again
 * once it gives. */
static void test_out_of_memory(void) {
  _pa_os_fail_after(0);
  errno = 0;
  CHECK(pa_handles_create() == NULL);
  CHECK_EQ(errno, ENOMEM);
  _pa_os_fail_after(-1);
  pa_handles *table = pa_handles_create();
  _pa_os_fail_after(0); /* the first handle needs the slots mapped */
  errno = 0;
  CHECK_EQ(pa_handle_alloc(table, 24), 0);
  CHECK_EQ(errno, ENOMEM);
  _pa_os_fail_after(-1);
  pa_handle h = pa_handle_alloc(table, 24);
  CHECK(h != 0 && pa_handle_get(table, h) != NULL);
  pa_handles_destroy(table);
}

static void misuse(const char *name) {
  pa_handles *table = pa_handles_create();
  pa_handle h = pa_handle_alloc(table, 24);
  if (strcmp(name, "misuse_freed") == 0) {
    pa_handle_free(table, h);
    pa_handle_get(table, h);
  } else if (strcmp(name, "misuse_forged") == 0) {
    pa_handle_get(table, h + 5000);
  } else if (strcmp(name, "misuse_pinned_free") == 0) {
    pa_handle_pin(table, h);
    pa_handle_free(table, h);
    exit(pa_handle_get(table, h) != NULL ? 0 : 41); /* it stayed */
  }
  exit(0);
}

static void test_misuse_reported(const char *argv0) {
  static const struct {
    const char *name, *report;
  } cases[] = {
      {"misuse_freed", "a freed handle (generation 0; the slot is at 1)"},
      {"misuse_forged", "not a handle of this table"},
      {"misuse_pinned_free", "the object is pinned; it stays"},
  };
  static char report[4096];
  char *plain[] = {NULL};
  char *debug[] = {"POOLALLOC_DEBUG=1", NULL};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    int status = check_run_child(argv0, cases[i].name, plain, report, sizeof report);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(strstr(report, cases[i].report) != NULL);
    status = check_run_child(argv0, cases[i].name, debug, report, sizeof report);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    CHECK(strstr(report, cases[i].report) != NULL);
    CHECK(strstr(report, "poolalloc: debug: aborting") != NULL);
  }
}

int main(int argc, char **argv) {
  if (argc == 2) misuse(argv[1]);
  test_basics();
  test_larger_objects_stay();
  test_bad_handles_refused();
  test_compact();
  test_threads();
  test_out_of_memory();
  test_misuse_reported(argv[0]);
  return check_done();
}
