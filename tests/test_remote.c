/* Frees by other threads (src/heap.c): each waits on its pool's own list,
 * the first into an armed pool announces the pool on the owner heap's
 * list, and the owner takes every announced pool's list in whole on its
 * next slow path, a full pool included; a fork()ed child announces every
 * pool again.  An owner thread fills one pool; the main thread frees its
 * blocks; each step checks the pool's record and the heap's list. */
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "inline.h"

#define SIZE 48
#define OTHER_SIZE 200 /* a class the owner has no pool of */

static pthread_barrier_t step;
static void **blocks;
static size_t capacity;
static pa_pool *pool;
static pa_heap *owner;

static void *owner_main(void *arg) {
  (void)arg;
  blocks = pa_malloc(PA_POOL_SIZE * sizeof *blocks);
  blocks[0] = pa_malloc(SIZE);
  pool = pa_pool_of(blocks[0]);
  capacity = pa_pool_bytes(pool) / pool->block_size;
  for (size_t i = 1; i < capacity; i++) blocks[i] = pa_malloc(SIZE);
  void *extra = pa_malloc(SIZE); /* finds the pool carved out: marks it full */
  owner = _pa_thread_heap;
  pthread_barrier_wait(&step);      /* 1: the pool is full */
  pthread_barrier_wait(&step);      /* 2: main freed some of its blocks */
  void *other = pa_malloc(OTHER_SIZE); /* the slow path: takes them in */
  pthread_barrier_wait(&step);      /* 3 */
  pthread_barrier_wait(&step);      /* 4: main freed the rest */
  pa_collect();
  pthread_barrier_wait(&step); /* 5 */
  pthread_barrier_wait(&step); /* 6: main is done looking */
  pa_free(other);
  pa_free(extra);
  pa_free(blocks);
  return NULL;
}

static bool on_heap_list(const void *p) {
  for (pa_block *b = atomic_load(&owner->remote); b; b = pa_block_next(b))
    if (b == p) return true;
  return false;
}

static void test_announce_and_take_in(void) {
  pthread_t thread;
  pthread_barrier_init(&step, NULL, 2);
  pthread_create(&thread, NULL, owner_main, NULL);
  pthread_barrier_wait(&step); /* 1 */
  CHECK_EQ(pool->state, PA_POOL_FULL);
  CHECK_EQ(pool->count, capacity);
  CHECK_EQ(atomic_load(&pool->remote), PA_REMOTE_ANNOUNCE); /* armed */
  CHECK(capacity >= 12);

  /* the first free announces the pool: disarmed, the block on the heap's list */
  pa_free(blocks[0]);
  CHECK_EQ(atomic_load(&pool->remote), 0);
  CHECK(on_heap_list(blocks[0]));
  /* the next ones wait on the pool's list, newest first */
  for (size_t i = 1; i < 10; i++) pa_free(blocks[i]);
  CHECK_EQ(atomic_load(&pool->remote), (uintptr_t)blocks[9]);
  CHECK(!on_heap_list(blocks[9]));
  CHECK_EQ(pool->count, capacity); /* out until the owner takes them in */
  CHECK_EQ(pool->state, PA_POOL_FULL);
  pthread_barrier_wait(&step); /* 2 */

  pthread_barrier_wait(&step); /* 3: the owner took the ten in */
  CHECK(pool->free == (pa_block *)blocks[0]); /* the announcer heads the free list */
  CHECK_EQ(pool->count, capacity - 10);
  CHECK_EQ(pool->state, PA_POOL_USED); /* no longer full: back in its class list */
  CHECK_EQ(atomic_load(&pool->remote), PA_REMOTE_ANNOUNCE); /* armed again */
  CHECK(atomic_load(&owner->remote) == NULL);

  /* the rest: the pool empties once the owner takes them in */
  for (size_t i = 10; i < capacity; i++) pa_free(blocks[i]);
  CHECK_EQ(pool->count, capacity - 10);
  pthread_barrier_wait(&step); /* 4 */
  pthread_barrier_wait(&step); /* 5: the owner collected */
  CHECK_EQ(pool->count, 0);
  CHECK(pool->state != PA_POOL_USED && pool->state != PA_POOL_FULL);
  CHECK(atomic_load(&owner->remote) == NULL);
  pthread_barrier_wait(&step); /* 6 */
  pthread_join(thread, NULL);
  pthread_barrier_destroy(&step);
  CHECK_EQ(check_pool_blocks_in_use(), 0);
}

/* fork() catching a thread between disarming a pool and announcing it:
 * here the announcement is taken back by hand before the fork.  The child
 * announces the pool again with the first block of its list, and takes
 * the list in; the announcing block is lost to it, as a block mid-free is.
 * The parent then gets its announcement back. */
static int child_checks(void) {
  int failed = 0;
  failed += atomic_load(&pool->remote) != (uintptr_t)blocks[3]; /* 4 popped */
  failed += !on_heap_list(blocks[4]);
  pa_collect(); /* takes in the abandoned owner's announced pools */
  failed += pool->count != capacity - 4;
  failed += atomic_load(&pool->remote) != PA_REMOTE_ANNOUNCE;
  return failed;
}

static void test_fork_announces_again(void) {
  pthread_t thread;
  pthread_barrier_init(&step, NULL, 2);
  pthread_create(&thread, NULL, owner_main, NULL);
  pthread_barrier_wait(&step); /* 1: the pool is full */
  pa_free(blocks[0]);          /* announces */
  CHECK(atomic_load(&owner->remote) == (pa_block *)blocks[0]);
  atomic_store(&owner->remote, NULL); /* the announcement never came */
  for (size_t i = 1; i < 5; i++) pa_free(blocks[i]);
  CHECK_EQ(atomic_load(&pool->remote), (uintptr_t)blocks[4]);
  pid_t pid = fork();
  if (pid == 0) _exit(child_checks());
  int status = -1;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  /* the parent's announcement, back where the free put it */
  pa_block_set_next((pa_block *)blocks[0], NULL);
  atomic_store(&owner->remote, (pa_block *)blocks[0]);
  pthread_barrier_wait(&step); /* 2: the owner takes blocks 0..4 in */
  pthread_barrier_wait(&step); /* 3 */
  CHECK_EQ(pool->count, capacity - 5);
  for (size_t i = 5; i < capacity; i++) pa_free(blocks[i]);
  pthread_barrier_wait(&step); /* 4 */
  pthread_barrier_wait(&step); /* 5: the owner collected */
  CHECK_EQ(pool->count, 0);
  pthread_barrier_wait(&step); /* 6 */
  pthread_join(thread, NULL);
  pthread_barrier_destroy(&step);
  CHECK_EQ(check_pool_blocks_in_use(), 0);
}

/* Many threads free into one owner's pools at once: every block comes back,
 * counted once. */
#define FREERS 4
#define PER_FREER 4096
static void *freer_main(void *arg) {
  void **mine = arg;
  for (size_t i = 0; i < PER_FREER; i++) pa_free(mine[i]);
  return NULL;
}

static void test_concurrent_freers(void) {
  static void *all[FREERS][PER_FREER];
  unsigned long long random = 7;
  for (size_t t = 0; t < FREERS; t++)
    for (size_t i = 0; i < PER_FREER; i++) all[t][i] = pa_malloc(16 + check_random(&random) % 497);
  pthread_t threads[FREERS];
  for (size_t t = 0; t < FREERS; t++) pthread_create(&threads[t], NULL, freer_main, all[t]);
  /* the owner allocates and frees while they free into its pools */
  for (int round = 0; round < 1000; round++) pa_free(pa_malloc(16 + check_random(&random) % 497));
  for (size_t t = 0; t < FREERS; t++) pthread_join(threads[t], NULL);
  pa_collect();
  CHECK_EQ(check_pool_blocks_in_use(), 0);
  struct pa_stats s;
  pa_stats_get(&s);
  CHECK_EQ(s.small_allocations, s.small_frees);
}

int main(void) {
  test_announce_and_take_in();
  test_fork_announces_again();
  test_concurrent_freers();
  return check_done();
}
