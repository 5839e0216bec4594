/* Pools: lazy carving (in secure builds: every block at once, in random
 * order), LIFO reuse of freed blocks, and the used/full/empty transitions
 * with their list membership. */
#include "check.h"
#include "inline.h"

#define SIZE 15 /* the seeds' example: goes to the 16-byte class */

static bool in_class_list(pa_pool *pool) {
  for (pa_pool *p = _pa_thread_heap->used[pool->size_class]; p && p != &_pa_empty_pool; p = p->next)
    if (p == pool) return true;
  return false;
}

static bool free_in_arena(pa_pool *pool) {
  pa_arena *arena = pa_arena_of(pool->start);
  return pool->state == PA_POOL_EMPTY && (arena->free_pools >> (pool - arena->pools) & 1);
}

static bool kept_by_heap(pa_pool *pool) {
  for (pa_pool *p = _pa_thread_heap->empty_pools; p; p = p->next)
    if (p == pool) return true;
  return false;
}

static size_t offset_in_pool(const void *p) {
  return (uintptr_t)p - (uintptr_t)pa_pool_of(p)->start;
}

static void test_lazy_carving_and_reuse(void) {
  unsigned char *a = pa_malloc(SIZE);
  pa_pool *pool = pa_pool_of(a);
  CHECK_EQ(pool->state, PA_POOL_USED);
  CHECK_EQ(pool->block_size, 16);
  CHECK_EQ(pool->count, 1);
  CHECK_EQ(offset_in_pool(a) % 16, 0);
#if PA_SECURE
  CHECK(pool->nextoffset > pa_pool_last_offset(pool)); /* every block on the free list at once */
#else
  CHECK_EQ(offset_in_pool(a), 0);
  CHECK_EQ(pool->nextoffset, 16); /* only one block carved */
#endif
  unsigned char *b = pa_malloc(SIZE);
  CHECK(PA_SECURE || b == a + 16);
  pa_free(a);
  CHECK(pa_malloc(SIZE) == a); /* the freed block is reused first */
  CHECK(PA_SECURE || pool->nextoffset == 32);
  pa_free(a);
  pa_free(b);
}

#if PA_SECURE
/* A fresh run hands out every block once, in an order that is not the
 * order of addresses. */
static void test_random_order(void) {
  static unsigned char *blocks[PA_ARENA_SIZE / 64];
  static unsigned char bits[PA_ARENA_SIZE / 64];
  blocks[0] = pa_malloc(64);
  size_t capacity = pa_pool_bytes(pa_pool_of(blocks[0])) / 64;
  size_t ascending = 0, seen = 0;
  for (size_t i = 0; i < capacity; i++) {
    if (i > 0) blocks[i] = pa_malloc(64);
    CHECK(pa_pool_of(blocks[i]) == pa_pool_of(blocks[0]));
    size_t index = offset_in_pool(blocks[i]) / 64;
    seen += bits[index] == 0;
    bits[index] = 1;
    ascending += i > 0 && blocks[i] == blocks[i - 1] + 64;
  }
  CHECK_EQ(seen, capacity);
  CHECK(ascending < capacity / 4);
  for (size_t i = 0; i < capacity; i++) pa_free(blocks[i]);
}
#endif

static void test_transitions(void) {
  size_t capacity = pa_pool_capacity(16); /* SIZE's class takes single pools */
  CHECK_EQ(_pa_class_run_pools((unsigned)pa_domain_class(PA_DOMAIN_MEM, SIZE)), 1);
  void **blocks = pa_malloc((2 * capacity + 1) * sizeof(void *));
  for (size_t i = 0; i < 2 * capacity; i++) blocks[i] = pa_malloc(SIZE);
  pa_pool *first = pa_pool_of(blocks[0]), *second = pa_pool_of(blocks[capacity]);
  for (size_t i = 0; i < capacity; i++) CHECK(pa_pool_of(blocks[i]) == first);
  for (size_t i = capacity; i < 2 * capacity; i++) CHECK(pa_pool_of(blocks[i]) == second);
  CHECK_EQ(first->state, PA_POOL_FULL);
  CHECK_EQ(second->count, capacity);
  CHECK_EQ(second->state, PA_POOL_USED); /* exhausted, noticed on next request */

  blocks[2 * capacity] = pa_malloc(SIZE);
  pa_pool *third = pa_pool_of(blocks[2 * capacity]);
  CHECK(third != first && third != second);
  CHECK_EQ(second->state, PA_POOL_FULL);
  CHECK(!in_class_list(first) && !in_class_list(second)); /* full pools are in no list */
  CHECK(_pa_thread_heap->used[first->size_class] == third);

  pa_free(blocks[5]); /* full -> used, at the back of the list */
  CHECK_EQ(first->state, PA_POOL_USED);
  CHECK(_pa_thread_heap->used[first->size_class] == third);
  CHECK(third->next == first && first->prev == third && first->next == NULL);
  CHECK(_pa_thread_heap->used_tail[first->size_class] == first);
  blocks[5] = pa_malloc(SIZE); /* served by the head */
  CHECK(pa_pool_of(blocks[5]) == third);

  /* first goes empty while its list holds one other pool: it stays */
  for (size_t i = 0; i < capacity; i++) pa_free(blocks[i]);
  CHECK_EQ(first->state, PA_POOL_USED);
  CHECK_EQ(first->count, 0);
  CHECK(in_class_list(first) && !kept_by_heap(first));

  /* second goes empty while its list holds two others: kept by the heap */
  for (size_t i = capacity; i < 2 * capacity; i++) pa_free(blocks[i]);
  CHECK_EQ(second->state, PA_POOL_EMPTY);
  CHECK(!in_class_list(second));
  CHECK(kept_by_heap(second)); /* for the heap's next fresh pool */
  CHECK(!free_in_arena(second));
  CHECK(_pa_thread_heap->used[third->size_class] == third && third->next == first);
  CHECK(_pa_thread_heap->used_tail[third->size_class] == first);

  pa_free(blocks[2 * capacity]); /* third goes empty beside first: both stay */
  CHECK_EQ(third->state, PA_POOL_USED);
  CHECK_EQ(third->count, 0);
  CHECK(in_class_list(third) && in_class_list(first));
  pa_free(blocks);

  pa_collect(); /* gives the kept pools back */
  CHECK(first->state == PA_POOL_EMPTY && third->state == PA_POOL_EMPTY);
  CHECK(free_in_arena(first) && free_in_arena(second) && free_in_arena(third));
  CHECK(_pa_thread_heap->empty_pools == NULL && _pa_thread_heap->empty_kept == 0);
}

/* A pool that went empty is carved again from its first block, in address
 * order, whether it serves the same class again or another. */
static void test_empty_pool_reuse(void) {
  void *a = pa_malloc(SIZE);
  pa_pool *pool = pa_pool_of(a);
  void *b = pa_malloc(SIZE);
  pa_free(a);
  pa_free(b); /* the old free list: b, then a */
  pa_collect();
  CHECK_EQ(pool->state, PA_POOL_EMPTY);
  void *c = pa_malloc(SIZE);
  void *c2 = pa_malloc(SIZE);
  CHECK(pa_pool_of(c) == pool && pa_pool_of(c2) == pool);
  CHECK(PA_SECURE || (offset_in_pool(c) == 0 && c2 == (char *)c + pool->block_size));
  CHECK_EQ(pool->count, 2);
  pa_free(c2);
  pa_free(c);
  pa_collect();
  void *d = pa_malloc(100);
  CHECK(pa_pool_of(d) == pool);
  CHECK_EQ(pool->block_size, pa_class_block_size(pa_domain_class(PA_DOMAIN_MEM, 100)));
  CHECK(PA_SECURE || offset_in_pool(d) == 0);
  CHECK_EQ(offset_in_pool(d) % pool->block_size, 0);
  pa_free(d);
  pa_collect();
}

/* The block query: a live block, a pointer inside it, the pool's tail, a
 * pool of the arena never carved, and pointers that are not poolalloc's. */
static void test_block_query(void) {
  char *p = pa_malloc(260);
  pa_block_info block;
  CHECK(pa_block_of(p, &block));
  CHECK(block.pool == pa_pool_of(p));
  CHECK(block.start == p);
  CHECK_EQ(block.size, 272);
  CHECK(block.state == PA_POOL_USED || block.state == PA_POOL_FULL);
  CHECK_EQ(block.in_use, pa_pool_of(p)->count);
  CHECK(block.in_use >= 1);
  CHECK_EQ(pa_class_block_size(block.size_class), 272);
  CHECK(pa_block_of(p + 57, &block) && block.start == p && block.size == 272);
  char *tail = block.pool->start + pa_pool_bytes(block.pool) - 1;
  CHECK(pa_pool_bytes(block.pool) % 272 != 0); /* a tail no block covers */
  CHECK(pa_block_of(tail, &block) && block.start == NULL && block.size == 272);
  /* the arena's last pool is not carved while only a few are in use */
  char *last = (char *)pa_arena_of(p)->base + PA_ARENA_SIZE - 16;
  CHECK(pa_block_of(last, &block));
  CHECK(block.state == PA_POOL_UNTOUCHED && block.start == NULL && block.size == 0);
  int on_stack = 0;
  static int in_data;
  CHECK(!pa_block_of(NULL, &block));
  CHECK(!pa_block_of(&on_stack, &block));
  CHECK(!pa_block_of(&in_data, &block));
  CHECK(!pa_block_of((void *)((uintptr_t)1 << 60), &block));
  pa_free(p);
}

static void *free_all(void *blocks) {
  for (void **b = blocks; *b; b++) pa_free(*b);
  return NULL;
}

/* A medium class's run: its first record serves the run, the others
 * point back to it, blocks in every pool of it are freed by the owner and
 * by another thread, and the whole run goes back to the arena as one. */
static void test_runs(void) {
  enum { MEDIUM = 3000 };
  unsigned cls = (unsigned)pa_medium_class(MEDIUM);
  unsigned pools = _pa_class_run_pools(cls);
  size_t capacity = pools * PA_POOL_SIZE / pa_class_block_size(cls);
  CHECK(pools > 1);
  void *blocks[64] = {0};
  CHECK(capacity < 32);
  for (size_t i = 0; i < capacity; i++) blocks[i] = pa_malloc(MEDIUM);
  pa_pool *run = pa_pool_of(blocks[0]);
  CHECK_EQ(run->run_pools, pools);
  CHECK_EQ(run->state, PA_POOL_USED);
  for (unsigned k = 1; k < pools; k++) {
    CHECK_EQ(run[k].state, PA_POOL_RUN);
    CHECK_EQ(pa_run_index(pa_arena_of(run->start), pa_pool_index(run[k].start)), k);
    CHECK(run[k].owner == NULL);
  }
  for (size_t i = 0; i < capacity; i++) CHECK(pa_pool_of(blocks[i]) == run);
  CHECK_EQ(run->count, capacity);
  /* the second half freed by another thread, then the first here */
  pthread_t thread;
  pthread_create(&thread, NULL, free_all, &blocks[capacity / 2]);
  pthread_join(thread, NULL);
  for (size_t i = 0; i < capacity / 2; i++) pa_free(blocks[i]);
  CHECK_EQ(run->count, capacity - capacity / 2); /* the other thread's wait in the heap */
  pa_collect();
  for (unsigned k = 0; k < pools; k++) CHECK_EQ(run[k].state, PA_POOL_EMPTY);
}

#if !PA_SECURE /* secure builds put a fresh pool's every block on its free list */
/* A run carves a fresh page only while no other pool of its class holds a
 * page's worth of freed blocks (src/heap.c): those go first. */
static void test_fresh_pages_last(void) {
  enum { REQUEST = 400, MAX = 4096 };
  static char *blocks[MAX];
  size_t n = 0;
  pa_pool *a = NULL, *b = NULL;
  while (n < MAX && b == NULL) { /* a filled, b fresh */
    blocks[n] = pa_malloc(REQUEST);
    pa_pool *pool = pa_pool_of(blocks[n++]);
    if (a == NULL) a = pool;
    else if (pool != a) b = pool;
  }
  CHECK(b != NULL && blocks[n - 1] == b->start && a->state == PA_POOL_FULL);
  size_t block = b->block_size, page_blocks = PA_CARVE_PAGE / block;
  /* a page's worth freed into a: the next block that would open a fresh
   * page of b comes from a instead */
  for (size_t i = 0; i <= page_blocks; i++) pa_free(blocks[i]), blocks[i] = NULL;
  size_t from_b = 0;
  for (;;) {
    blocks[n] = pa_malloc(REQUEST);
    if (pa_pool_of(blocks[n++]) != b) break;
    from_b++;
  }
  CHECK(pa_pool_of(blocks[n - 1]) == a);
  CHECK(b->nextoffset <= PA_CARVE_PAGE && b->nextoffset + block > PA_CARVE_PAGE);
  CHECK_EQ(from_b, b->nextoffset / block - 1);
  /* fewer than a page's worth waiting in a: b carves its next page */
  for (size_t i = 0; i < page_blocks; i++) blocks[n++] = pa_malloc(REQUEST); /* a's free list, used up */
  char *opened = pa_malloc(REQUEST); /* a full again; b opens its second page */
  CHECK(pa_pool_of(opened) == b && (size_t)(opened - b->start) + block > PA_CARVE_PAGE);
  for (size_t i = n - page_blocks; i < n - page_blocks / 2; i++) pa_free(blocks[i]), blocks[i] = NULL;
  size_t second_page_end = 2 * PA_CARVE_PAGE;
  bool stayed_in_b = true;
  while (b->nextoffset + block <= second_page_end) stayed_in_b &= pa_pool_of(blocks[n++] = pa_malloc(REQUEST)) == b;
  blocks[n++] = pa_malloc(REQUEST); /* opens b's third page: a holds too few */
  CHECK(stayed_in_b && pa_pool_of(blocks[n - 1]) == b && b->nextoffset > second_page_end);
  pa_free(opened);
  for (size_t i = 0; i < n; i++) pa_free(blocks[i]);
}
#endif

int main(void) {
  test_block_query();
#if !PA_SECURE
  test_fresh_pages_last();
#endif
  test_runs();
  /* A live block of another class keeps the arena mapped, so the tests can
   * look at pools after pa_collect() has given them back. */
  void *pin = pa_malloc(500);
  test_lazy_carving_and_reuse();
  test_transitions();
  test_empty_pool_reuse();
#if PA_SECURE
  test_random_order();
#endif
  pa_free(pin);
  return check_done();
}
