/*
 * Pools: one size class each, blocks carved lazily.
 *
 * A pool taken from an arena is initialised for the class of the request that
 * took it: an empty free list and a bump offset at the first block, so only
 * the blocks actually handed out are ever touched.  (Secure builds put every
 * block on the free list at once instead, in random order: src/secure.c.)
 * This holds even when the pool served the same class before it went
 * empty.  CPython reuses the old free list then, but that list is in the
 * order the blocks died, so a structure built from it lies scattered
 * across the pool; carved in address order, it lies the way it is walked.
 * With wholly free arenas kept warm (src/arena.c), binary-trees of depth
 * 18 on the collector (bench/gc.sh) took 2.1 s on the old free lists and
 * takes 1.3 s.
 *
 * State transitions, all by the owning heap:
 *   used -> full    the pool has no free and no virgin block: unhooked, O(1)
 *   full -> used    a block is freed into it: linked at the *back* of its
 *                   class list.  CPython links it at the front; under random
 *                   churn nearly every free lands in a full pool, and the
 *                   front makes each such pool serve one block, go full and
 *                   be unhooked again, every step writing a neighbour's
 *                   header in another page.  At the back it gathers frees
 *                   while it waits: the churn benchmark drops from 181 to 145 ms.
 *   used -> empty   its last block is freed: kept by the heap or back to
 *                   the arena, unless its class list holds at most one
 *                   other pool (then it stays in the list: see
 *                   class_keeps_empty)
 */
#include <string.h>

#include "inline.h"

/* The pool every empty class list points at: no free block, no virgin block,
 * so the fast path fails over to the slow path without testing for NULL. */
pa_pool _pa_empty_pool = {.nextoffset = 1, .size_class = PA_CLASS_NONE};

/* Under the debug hooks, a pool going to another class forgets the tags
 * its freed blocks carry (src/debug.c): at the new class's offsets they
 * would be read as tags of blocks whose dead bytes the other class wrote.
 * A run forgets them always: its later pools may have served any class. */
static void pool_forget_tags(pa_pool *pool) {
  size_t bytes = pa_pool_bytes(pool);
  track_undefined(pool->start, bytes);
  memset(pool->start, 0, bytes);
  track_noaccess(pool->start, bytes);
}

/* The blocks a run is made long enough to hold.  A heap takes the slow
 * path each time the run at the head of a class list runs out of free
 * blocks, and under random churn the blocks freed into a run are about
 * its share of the class's free ones: a 4 KiB pool of 256-byte blocks (16)
 * went out after one or two allocations, and the slow path and the pool
 * records it walks took 30% of such a thread's time.  Runs of 64 small
 * blocks (mimalloc's small pages hold 64 KiB) made that churn 40% faster
 * (bench/threads.sh private, 1 thread: 210 -> 125 ms) with no more peak
 * RSS there or under CPython: the untouched tail of a run is never
 * carved, so it is never resident.  Runs of 256 (a quarter of an arena at
 * most: 64 KiB, mimalloc's small page) made it 9% faster again (100
 * million replacements: 0.56 -> 0.51 s; mimalloc 0.55) and CPython's
 * class instances 5% (bench/python), with the same peak RSS once a run
 * carves a fresh page only while its class has no page's worth of freed
 * blocks elsewhere (src/heap.c).  The smallest classes gain too: their
 * blocks made one after another lie in fewer, adjacent pages, and CPython's
 * class instances (objects of 32 to 64 bytes that its collector walks in
 * the order they were made) ran 7% faster than with single pools.  The
 * price is in a heap fragmented on purpose: a live block keeps the carved
 * pages of its whole run resident, and with one 48-byte block left in
 * each arena, runs of 3 pools keep 6.3% of the memory (test_release
 * partial), single pools 3.4% (pymalloc's 16 KiB pools would keep 4
 * pages, mimalloc's 64 KiB pages 16).  Medium blocks are larger than a
 * pool, and eight of them already make a run of two pools or more. */
enum { RUN_BLOCKS_SMALL = 256, RUN_BLOCKS_MEDIUM = 8 };

/* The pools of a run of class cls: the shortest run that holds the class's
 * RUN_BLOCKS or a quarter of an arena, whichever is less, two blocks at
 * least, and wastes no more than an eighth of itself on a tail too small
 * for a block (or, failing that within half an arena, the run that wastes
 * least).  Blocks of 16 bytes take one pool, 48-byte ones 3 pools, 256-byte
 * ones and up 16 pools, 640-byte ones 2 pools (12 blocks), 4 KiB ones 8
 * pools (8 blocks), 64 KiB ones 32 pools (2 blocks). */
unsigned _pa_class_run_pools(unsigned cls) {
  size_t block = pa_class_block_size(cls);
  size_t blocks = cls < PA_SMALL_CLASSES ? RUN_BLOCKS_SMALL : RUN_BLOCKS_MEDIUM;
  size_t target = block * blocks < PA_ARENA_SIZE / 4 ? block * blocks : PA_ARENA_SIZE / 4;
  unsigned best = PA_POOLS_PER_ARENA / 2;
  size_t best_waste = SIZE_MAX;
  for (unsigned n = (unsigned)((target + PA_POOL_SIZE - 1) / PA_POOL_SIZE); n <= PA_POOLS_PER_ARENA / 2; n++) {
    size_t bytes = (size_t)n * PA_POOL_SIZE;
    if (bytes / block < 2) continue;
    if (bytes % block <= bytes / 8) return n;
    if (bytes % block < best_waste) best = n, best_waste = bytes % block;
  }
  return best;
}

/* Where a run of class cls may start, in pools: runs of a class whose
 * block size is a multiple of 2^k pools start on a multiple of 2^k pools,
 * so every block of the run is aligned to 2^k pools (a 64 KiB block to 64
 * KiB), and aligned_alloc can be served from such a class. */
unsigned _pa_class_run_alignment(unsigned cls) {
  size_t block = pa_class_block_size(cls);
  if (block % PA_POOL_SIZE != 0) return 1;
  size_t pools = block / PA_POOL_SIZE;
  return (unsigned)(pools & -pools);
}

/* Set by the debug hooks (src/debug.c) when they go on, and read by the
 * layers below them that behave differently under the hooks: this one, and
 * tracing's rounding figures.  Defined here, the lowest file that reads it. */
bool _pa_debug_hooks_installed;

static void pool_init(pa_pool *pool, pa_heap *owner, unsigned size_class) {
  bool served = pool->size_class != PA_CLASS_NONE;
  if (_pa_debug_hooks_installed && (pool->run_pools > 1 || (served && pool->size_class != size_class)))
    pool_forget_tags(pool);
  pool->owner = owner;
  pool->state = PA_POOL_USED;
  pool->count = 0;
  for (unsigned k = 1; k < pool->run_pools; k++) pool[k].size_class = (uint8_t)size_class;
  size_t block_size = pa_class_block_size(size_class);
  pool->free = NULL;
  pool->block_size = (uint32_t)block_size;
  pool->size_class = (uint8_t)size_class;
  pool->nextoffset = 0;
  /* no block out, so no other thread frees into it: armed, empty */
  atomic_store_explicit(&pool->remote, PA_REMOTE_ANNOUNCE, memory_order_relaxed);
#if PA_SECURE
  pool->canary = _pa_secrets.canary ^ (uintptr_t)pool;
  pool->divisor = UINT64_MAX / block_size + 1;
  _pa_secure_shuffle_pool(pool, owner);
#endif
}

static void pool_link_front(pa_heap *heap, pa_pool *pool) {
  pa_pool *first = heap->used[pool->size_class];
  pool->prev = NULL;
  pool->next = (first == &_pa_empty_pool) ? NULL : first;
  if (pool->next)
    pool->next->prev = pool;
  else
    heap->used_tail[pool->size_class] = pool;
  heap->used[pool->size_class] = pool;
}

static void pool_link_back(pa_heap *heap, pa_pool *pool) {
  pa_pool *last = heap->used_tail[pool->size_class];
  if (last == NULL) {
    pool_link_front(heap, pool);
    return;
  }
  pool->next = NULL;
  pool->prev = last;
  last->next = pool;
  heap->used_tail[pool->size_class] = pool;
}

void _pa_pool_unlink(pa_heap *heap, pa_pool *pool) {
  if (pool->prev)
    pool->prev->next = pool->next;
  else
    heap->used[pool->size_class] = pool->next ? pool->next : &_pa_empty_pool;
  if (pool->next)
    pool->next->prev = pool->prev;
  else
    heap->used_tail[pool->size_class] = pool->prev;
  pool->next = pool->prev = NULL;
}

/* Pools of its class list the slow path looks at past the head before it
 * carves a fresh page of the head (pa_pool_take_head). */
enum { FREE_LOOKAHEAD = 8 };

pa_pool *_pa_pool_freed_elsewhere(pa_pool *head) {
  pa_pool *pool = head->next;
  for (unsigned seen = 0; pool != NULL && seen < FREE_LOOKAHEAD; pool = pool->next, seen++) {
    uint32_t carved = pool->nextoffset / pool->block_size;
    uint32_t page_blocks = PA_CARVE_PAGE / pool->block_size;
    if (pool->free != NULL && carved - pool->count >= (page_blocks ? page_blocks : 1)) return pool;
  }
  return NULL;
}

void _pa_pool_move_front(pa_heap *heap, pa_pool *pool) {
  _pa_pool_unlink(heap, pool);
  pool_link_front(heap, pool);
}

void _pa_pool_mark_full(pa_heap *heap, pa_pool *pool) {
  _pa_pool_unlink(heap, pool);
  pool->state = PA_POOL_FULL;
}

void *_pa_pool_take_for(pa_heap *heap, pa_pool *pool) {
  void *block = pool->state == PA_POOL_FULL ? NULL : pa_pool_take_block(pool);
  if (block && pool->free == NULL && pool->nextoffset > pa_pool_last_offset(pool))
    _pa_pool_mark_full(heap, pool);
  return block;
}

/* A kept pool or run of the length, starting on a multiple of alignment
 * pools (arenas are aligned to their size), taken off the heap's list. */
static pa_pool *kept_take(pa_heap *heap, unsigned npools, unsigned alignment) {
  for (pa_pool **link = &heap->empty_pools; *link; link = &(*link)->next) {
    pa_pool *pool = *link;
    if (pool->run_pools != npools || (((uintptr_t)pool->start >> PA_POOL_BITS) & (alignment - 1)) != 0)
      continue;
    *link = pool->next;
    heap->empty_kept -= npools;
    return pool;
  }
  return NULL;
}

/* A fresh pool or run comes from the heap's kept ones when it has one of
 * the length: no arena lock.  A handle table's heap (small classes only)
 * takes single pools: its compaction empties and gives back pools, and
 * the finer they are, the more it gives back. */
pa_pool *_pa_pool_take_fresh(pa_heap *heap, unsigned size_class) {
  unsigned npools = heap->table ? 1 : _pa_class_run_pools(size_class);
  unsigned alignment = _pa_class_run_alignment(size_class);
  pa_pool *pool = heap->empty_pools ? kept_take(heap, npools, alignment) : NULL;
  if (pool == NULL) {
    pool = _pa_arena_take_run(npools, alignment);
    if (pool == NULL) return NULL;
  }
  pool_init(pool, heap, size_class);
  pool_link_front(heap, pool);
  return pool;
}

/* A heap keeps an empty pool or run while it has room, unless no thread
 * of its own will allocate from it again (exited, or a handle table's,
 * whose compaction gives emptied pools back). */
static bool heap_keeps(const pa_heap *heap, const pa_pool *pool) {
  return (heap->draining || heap->empty_kept + pool->run_pools <= PA_HEAP_EMPTY_POOLS) &&
         !heap->table && !atomic_load_explicit(&heap->abandoned, memory_order_relaxed);
}

void _pa_pool_release_empty(pa_heap *heap, pa_pool *pool) {
  _pa_pool_unlink(heap, pool);
  if (!heap_keeps(heap, pool)) {
    _pa_arena_return_run(pool);
    return;
  }
  pool->state = PA_POOL_EMPTY;
  pool->next = heap->empty_pools;
  heap->empty_pools = pool;
  heap->empty_kept += pool->run_pools;
}

void _pa_pool_release_kept(pa_heap *heap, bool excess) {
  pa_pool **link = &heap->empty_pools;
  unsigned kept = 0;
  while (*link && excess && kept + (*link)->run_pools <= PA_HEAP_EMPTY_POOLS) {
    kept += (*link)->run_pools;
    link = &(*link)->next;
  }
  pa_pool *give_back = *link;
  *link = NULL;
  heap->empty_kept = kept;
  if (give_back) _pa_arena_return_runs(give_back);
}

/* An emptied pool stays in its class list while the list holds at most
 * one other pool.  A class whose live blocks span two pools (a thread
 * that hands itself 2,048 blocks at a time) otherwise gives one back and
 * takes a fresh one at every turn, carved again from its first block, the
 * one freed longest ago, where the stayed pool's free list hands out the
 * blocks freed last: 20 million such blocks took 192 ms, and take 109
 * (mimalloc 130; bench/threads prodcons 1 thread). */
static bool class_keeps_empty(const pa_pool *pool) {
  if (pool->prev && pool->next) return false;
  const pa_pool *other = pool->prev ? pool->prev : pool->next;
  return other == NULL || (other == pool->prev ? other->prev == NULL : other->next == NULL);
}

void _pa_pool_after_free(pa_heap *heap, pa_pool *pool) {
  if (pool->state == PA_POOL_FULL) {
    pool->state = PA_POOL_USED;
    pool_link_back(heap, pool);
  }
  if (pool->count == 0 && !class_keeps_empty(pool)) _pa_pool_release_empty(heap, pool);
}
