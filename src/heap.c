/*
 * Thread heaps: each thread allocates from pools its heap owns, with no lock.
 *
 * A free by the owning thread goes straight into the pool.  A free by any
 * other thread is pushed with one CAS onto the pool's own `remote` list
 * (mimalloc's thread_free), so the owner later walks a list of blocks that
 * lie in one pool or run.  So that the owner finds every such pool, full
 * ones too, without scanning its pools, a pool is *armed* while its list
 * is empty: the first free into an armed pool disarms it and goes onto the
 * owner heap's `remote` stack instead, announcing the pool.  On its next
 * slow path the owner takes each announced pool's list in whole and arms
 * the pool again:
 *
 *   armed, empty ──(other thread frees b)──> disarmed, b on heap->remote
 *   disarmed ──(other threads free c, d)──> disarmed, pool list d -> c
 *   owner drains b: takes b, d, c into the pool ──> armed, empty
 *
 * A disarmed pool always has its announcing block out (counted in the
 * pool's count), so a pool with blocks waiting never goes back to the arena.
 * A fork() that catches another thread between disarming a pool and
 * pushing the announcement would leave the pool disarmed with nothing to
 * announce it; the child announces every pool again (see
 * _pa_heaps_fork_child).
 * mimalloc reaches full pages with a second flag and path ("delayed free");
 * here the announcement does it.
 *
 * Heaps are never unmapped, which is what makes the remote push safe at any
 * time: when a thread exits its heap is *abandoned* (its empty pools go back
 * to the arenas, the rest stay owned by it) and the next new thread adopts
 * it whole.  A free into an abandoned heap is done at once under the heaps
 * lock, so its pools go back to the arenas, and the arenas to the OS, as
 * their blocks are freed, not when some later thread adopts the heap.
 *
 * A thread's heap is set under a key src/runtime.c makes at the library's
 * load, whose destructor gives it up at the thread's exit; the runtime
 * also takes every lock around fork().
 *
 * Nothing here calls malloc before the calling thread has its heap, so the
 * library can be the process's malloc (src/override.c) and be entered again
 * from inside pthread functions without deadlock.
 */
#include <errno.h>

#include "inline.h"

pa_heap _pa_empty_heap = {.used = {[0 ... PA_NUM_CLASSES - 1] = &_pa_empty_pool}};
_Thread_local pa_heap *_pa_thread_heap __attribute__((tls_model("initial-exec"))) = &_pa_empty_heap;

static struct {
  pthread_mutex_t lock; /* guards all, abandoned, and abandoned heaps' contents */
  pthread_key_t exit_key; /* made at the library's load; its destructor gives a heap up */
  atomic_bool exit_key_set;
  pa_heap *all;
  pa_heap *abandoned;
  pa_heap *retired_tables; /* handle tables' heaps, linked by next_abandoned */
  unsigned count; /* heaps made: the last id given */
} heaps = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Takes in the blocks other threads freed into pool, after `announcer`
 * (the block that told the heap of them) when there is one, and arms the
 * pool again.  The list is walked once, to count it and find its tail, and
 * at most as far as the pool has blocks out, so a block freed twice cannot
 * make it endless.  All its blocks lie in one pool or run: a single list
 * for the whole heap mixed every class's pools, and walking it missed the
 * cache at every step (producer and consumer threads, 16 on one CPU:
 * 59% of their time in that walk).  The caller settles the pool's
 * state. */
static void pool_take_remote(pa_pool *pool, pa_block *announcer) {
  uintptr_t list = atomic_exchange_explicit(&pool->remote, PA_REMOTE_ANNOUNCE, memory_order_acquire);
  pa_block *head = (pa_block *)(list & ~PA_REMOTE_ANNOUNCE);
  if (announcer) {
    pa_block_set_next(announcer, head);
    head = announcer;
  }
  if (head == NULL) return;
  uint32_t taken = 1;
  pa_block *tail = head;
  for (pa_block *next; taken < pool->count && (next = pa_block_next(tail)) != NULL; taken++) {
#if PA_SECURE
    if (!pa_secure_block_start(pool, next)) _pa_secure_fault(PA_FAULT_BAD_FREE_LIST, pool, next);
#endif
    tail = next;
  }
  pa_block_set_next(tail, pool->free);
  pool->free = head;
  pool->count -= taken;
}

/* Each block on the heap's list announces a pool with blocks waiting.
 * The pools the drain empties are all kept first, and the excess given
 * back at the end under one taking of the arena lock: a drain of many
 * blocks from other threads would otherwise take it for every pool it
 * empties (8 threads exchanging blocks of 16 B..16 KiB slept on it for
 * most of their context switches). */
static void heap_drain_remote(pa_heap *heap) {
  pa_block *block = atomic_exchange_explicit(&heap->remote, NULL, memory_order_acquire);
  heap->draining = true;
  while (block) {
    pa_block *next = pa_block_next(block);
#if PA_SECURE
    if (next != NULL && pa_arena_of(next) == NULL)
      _pa_secure_fault(PA_FAULT_BAD_FREE_LIST, pa_pool_of(block), block);
#endif
    pa_pool *pool = pa_pool_of(block);
    pool_take_remote(pool, block);
    if (pool->count == 0 || pool->state == PA_POOL_FULL) _pa_pool_after_free(heap, pool);
    block = next;
  }
  heap->draining = false;
  if (heap->empty_kept > PA_HEAP_EMPTY_POOLS) _pa_pool_release_kept(heap, true);
}

/* Called with the heaps lock held.  An abandoned heap keeps no empty pool:
 * no thread of its own will allocate from it. */
static void heap_free_abandoned(pa_heap *heap, pa_pool *pool, void *p) {
  if (pool->count > 1) {
    pa_pool_free_local(heap, pool, p);
    return;
  }
  /* the last block (so the pool is used, not full: pools hold two or more);
   * the pool may be unmapped once released, so it is released last */
  pa_block *block = p;
  pa_block_set_next(block, pool->free);
  pool->free = block;
  pool->count = 0;
  _pa_pool_release_empty(heap, pool);
}

static void heap_announce(pa_heap *owner, pa_block *block) {
  pa_block *head = atomic_load_explicit(&owner->remote, memory_order_relaxed);
  do {
    pa_block_set_next(block, head);
  } while (!atomic_compare_exchange_weak_explicit(&owner->remote, &head, block,
                                                  memory_order_release, memory_order_relaxed));
}

/* Onto the pool's list; or, when the pool is armed (its list is then
 * empty), disarmed and onto the owner's list, to announce the pool. */
void _pa_heap_free_remote(pa_heap *owner, pa_pool *pool, void *p) {
  if (atomic_load_explicit(&owner->abandoned, memory_order_relaxed)) {
    pthread_mutex_lock(&heaps.lock);
    bool still_abandoned = atomic_load_explicit(&owner->abandoned, memory_order_relaxed);
    if (still_abandoned) heap_free_abandoned(owner, pool, p);
    pthread_mutex_unlock(&heaps.lock);
    if (still_abandoned) return;
  }
  pa_block *block = p;
  uintptr_t head = atomic_load_explicit(&pool->remote, memory_order_relaxed);
  for (;;) {
    if (head == PA_REMOTE_ANNOUNCE) {
      if (atomic_compare_exchange_weak_explicit(&pool->remote, &head, 0, memory_order_relaxed,
                                                memory_order_relaxed)) {
        heap_announce(owner, block);
        return;
      }
      continue;
    }
    pa_block_set_next(block, (pa_block *)head);
    if (atomic_compare_exchange_weak_explicit(&pool->remote, &head, (uintptr_t)block,
                                              memory_order_release, memory_order_relaxed))
      return;
  }
}

/* Takes in every announced pool's remote list and gives every empty pool
 * back to the arenas. */
void _pa_heap_collect(pa_heap *heap) {
  heap_drain_remote(heap);
  for (unsigned cls = 0; cls < PA_NUM_CLASSES; cls++) {
    pa_pool *pool = heap->used[cls];
    while (pool != &_pa_empty_pool && pool != NULL) {
      pa_pool *next = pool->next;
      if (pool->count == 0) _pa_pool_release_empty(heap, pool);
      pool = next;
    }
  }
  _pa_pool_release_kept(heap, false);
}

void _pa_heaps_collect_abandoned(void) {
  pthread_mutex_lock(&heaps.lock);
  for (pa_heap *heap = heaps.abandoned; heap; heap = heap->next_abandoned) _pa_heap_collect(heap);
  pthread_mutex_unlock(&heaps.lock);
}

static void heap_abandon_locked(pa_heap *heap) {
  atomic_store_explicit(&heap->abandoned, true, memory_order_relaxed);
  heap->thread = 0;
  heap->next_abandoned = heaps.abandoned;
  heaps.abandoned = heap;
}

/* Set once the thread's heap is given up: nothing may make it another. */
static _Thread_local bool thread_exited __attribute__((tls_model("initial-exec")));

void _pa_heap_abandon(pa_heap *heap) {
  thread_exited = true;
  _pa_thread_heap = &_pa_empty_heap;
  _pa_heap_collect(heap);
  pthread_mutex_lock(&heaps.lock);
  heap_abandon_locked(heap);
  _pa_heap_collect(heap); /* blocks other threads freed since the first collect */
  pthread_mutex_unlock(&heaps.lock);
}

/* In a fork()ed child: a thread the child does not have may have been
 * caught between disarming pool and announcing it.  So every disarmed pool
 * is announced again, by the first block on its list, or armed again when
 * its list is empty.  An announcement that did arrive then comes twice,
 * which the drain takes as it takes any: the second finds the list taken
 * in.  The announcing block itself is lost to the child, as any block
 * caught mid-free is. */
static void pool_announce_again(pa_pool *pool) {
  uintptr_t list = atomic_load_explicit(&pool->remote, memory_order_relaxed);
  if (list == PA_REMOTE_ANNOUNCE || pool->owner == NULL) return;
  if (list == 0) {
    atomic_store_explicit(&pool->remote, PA_REMOTE_ANNOUNCE, memory_order_relaxed);
    return;
  }
  pa_block *first = (pa_block *)list;
  atomic_store_explicit(&pool->remote, (uintptr_t)pa_block_next(first), memory_order_relaxed);
  heap_announce(pool->owner, first);
}

/* In a fork()ed child, with the heaps lock taken before the fork: every
 * pool's remote list is announced (a walk of every arena's records: 1.5
 * ms for a heap of 1 GiB in 256-byte blocks, where fork() and the wait
 * for the child took 18 ms without it); then the heaps of the threads the
 * child does not have, which will never see them again, are abandoned for
 * adoption.  Handle tables' heaps belong to no thread and stay as they are. */
void _pa_heaps_fork_child(void) {
  _pa_arenas_lock();
  _pa_arenas_each_run(pool_announce_again);
  _pa_arenas_unlock();
  for (pa_heap *heap = heaps.all; heap; heap = heap->next_all)
    if (heap != _pa_thread_heap && !heap->table &&
        !atomic_load_explicit(&heap->abandoned, memory_order_relaxed))
      heap_abandon_locked(heap);
  pthread_mutex_unlock(&heaps.lock);
}

/* A heap record off the stack given (abandoned heaps, or retired tables'),
 * or a new one; NULL if out of memory. */
static pa_heap *heap_take(pa_heap **stack) {
  pthread_mutex_lock(&heaps.lock);
  pa_heap *heap = *stack;
  if (heap) {
    *stack = heap->next_abandoned;
    atomic_store_explicit(&heap->abandoned, false, memory_order_relaxed);
  }
  pthread_mutex_unlock(&heaps.lock);
  if (heap) return heap;
  heap = _pa_meta_alloc(sizeof(pa_heap));
  if (heap == NULL) return NULL;
  for (unsigned cls = 0; cls < PA_NUM_CLASSES; cls++) heap->used[cls] = &_pa_empty_pool;
  pthread_mutex_lock(&heaps.lock);
  heap->id = ++heaps.count;
  heap->next_all = heaps.all;
  heaps.all = heap;
  pthread_mutex_unlock(&heaps.lock);
  return heap;
}

pa_heap *_pa_heap_table_make(void) {
  pa_heap *heap = heap_take(&heaps.retired_tables);
  if (heap) heap->table = true;
  return heap;
}

void _pa_heap_table_retire(pa_heap *heap) {
  _pa_heap_collect(heap);
  pthread_mutex_lock(&heaps.lock);
  heap->next_abandoned = heaps.retired_tables;
  heaps.retired_tables = heap;
  pthread_mutex_unlock(&heaps.lock);
}

/* The calling thread's heap under the key, if it is made and the heap is
 * a thread's. */
static void heap_set_exit_key(pa_heap *heap) {
  if (heap->table || !atomic_load_explicit(&heaps.exit_key_set, memory_order_acquire)) return;
  heap->exit_keyed = pthread_setspecific(heaps.exit_key, heap) == 0;
}

/* A heap the calling thread took before the load (a C++ runtime's
 * constructor allocates first) is set under the key now; another thread's
 * is, at its next slow allocation. */
void _pa_heaps_exit_key(pthread_key_t key) {
  heaps.exit_key = key;
  atomic_store_explicit(&heaps.exit_key_set, true, memory_order_release);
  if (_pa_thread_heap != &_pa_empty_heap) heap_set_exit_key(_pa_thread_heap);
}

/* A thread's first heap: an exited thread's, or a new one; the key makes
 * the thread's exit give it up (src/runtime.c's destructor). */
static pa_heap *heap_adopt(void) {
  pa_heap *heap = heap_take(&heaps.abandoned);
  if (heap == NULL) return NULL;
  heap->thread = _pa_os_thread_id();
  _pa_thread_heap = heap; /* before anything may call malloc */
  heap->exit_keyed = false;
  heap_set_exit_key(heap);
  return heap;
}

pa_heap *_pa_heap_current(void) {
  pa_heap *heap = _pa_thread_heap;
  return heap != &_pa_empty_heap ? heap : heap_adopt();
}

pa_heap *_pa_heap_for_counting(void) { return thread_exited ? NULL : _pa_heap_current(); }

/* The head pool has virgin blocks and no free ones: a page's worth of
 * blocks freed into another pool of the class goes first, and only
 * without such a pool does the head carve a fresh page.  Carving while
 * blocks wait in other pools made every class of a churning thread keep
 * a run's virgin tail resident beside its freed blocks: 4,096 slots of
 * 8..512 bytes on runs of 256 blocks had 4.0 MB peak RSS, and have 3.5
 * (mimalloc 3.5). */
static void *heap_carve(pa_heap *heap, pa_pool *head) {
  pa_pool *freed = _pa_pool_freed_elsewhere(head);
  if (freed == NULL) return pa_pool_carve(head);
  _pa_pool_move_front(heap, freed);
  return pa_pool_pop(freed);
}

/* Everything the inline fast path does not for sizes 0..512: first use by a
 * thread, frees from other threads, exhausted pools, a fresh page to carve,
 * and taking a new pool from the arenas. */
void *_pa_heap_malloc_slow(pa_heap *heap, size_t cls) {
  if (heap == &_pa_empty_heap) {
    heap = _pa_heap_current();
    if (heap == NULL) {
      errno = ENOMEM;
      return NULL;
    }
  }
  if (__builtin_expect(!heap->exit_keyed, 0) && heap == _pa_thread_heap) heap_set_exit_key(heap);
  if (atomic_load_explicit(&heap->remote, memory_order_relaxed)) heap_drain_remote(heap);
  _pa_arenas_decay_due();
  _pa_large_decay_due();
  for (pa_pool *pool = heap->used[cls]; pool != &_pa_empty_pool; pool = heap->used[cls]) {
    if (pool->free) return pa_pool_pop(pool);
    /* blocks waiting whose announcement has not come in yet: take them
     * (only the owner takes a list, so a list seen here is still there) */
    if (atomic_load_explicit(&pool->remote, memory_order_relaxed) > PA_REMOTE_ANNOUNCE) {
      pool_take_remote(pool, NULL);
      continue;
    }
    if (pa_pool_has_virgin(pool)) return heap_carve(heap, pool);
    _pa_pool_mark_full(heap, pool);
  }
  pa_pool *pool = _pa_pool_take_fresh(heap, (unsigned)cls);
  return pool ? pa_pool_take_block(pool) : NULL;
}

void _pa_heaps_lock(void) { pthread_mutex_lock(&heaps.lock); }
void _pa_heaps_unlock(void) { pthread_mutex_unlock(&heaps.lock); }
RACY_READS void _pa_heaps_walk(void (*visit)(void *ctx, pa_heap *heap, const pa_heap_view *view),
                               void *ctx) {
  for (pa_heap *heap = heaps.all; heap; heap = heap->next_all) {
    pa_heap_view view = {heap->id, heap->thread, heap->table,
                         atomic_load_explicit(&heap->abandoned, memory_order_relaxed),
                         &heap->counts};
    visit(ctx, heap, &view);
  }
}

size_t _pa_heaps_count(void) {
  pthread_mutex_lock(&heaps.lock);
  size_t count = heaps.count;
  pthread_mutex_unlock(&heaps.lock);
  return count;
}

