/*
 * Thread heaps: each thread allocates from pools its heap owns, with no lock.
 *
 * A free by the owning thread goes straight into the pool.  A free by any
 * other thread is pushed with one CAS onto the owner heap's `remote` stack;
 * the owner folds those blocks back into their pools on its next slow path
 * (mimalloc's thread_free idea, with one list per heap instead of per page,
 * so a full pool that only other threads free into is still found).
 *
 * Heaps are never unmapped, which is what makes the remote push safe at any
 * time: when a thread exits its heap is *abandoned* (its empty pools go back
 * to the arenas, the rest stay owned by it) and the next new thread adopts
 * it whole.  A free into an abandoned heap is done at once under the heaps
 * lock, so its pools go back to the arenas, and the arenas to the OS, as
 * their blocks are freed, not when some later thread adopts the heap.
 *
 * A thread's heap is set under a key src/runtime.c makes at the process's
 * start, whose destructor gives it up at the thread's exit; the runtime
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
  pthread_key_t exit_key; /* set at the process's start; its destructor gives a heap up */
  atomic_bool exit_key_set;
  pa_heap *all;
  pa_heap *abandoned;
  pa_heap *retired_tables; /* handle tables' heaps, linked by next_abandoned */
  unsigned count; /* heaps made: the last id given */
} heaps = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The pools the drain empties are all kept first, and the excess given
 * back at the end under one taking of the arena lock: a drain of many
 * blocks from other threads would otherwise take it for every pool it
 * empties (8 threads exchanging blocks of 16 B..16 KiB slept on it for
 * most of their context switches). */
static void heap_drain_remote(pa_heap *heap) {
  pa_block *block = atomic_exchange_explicit(&heap->remote, NULL, memory_order_acquire);
  heap->draining = true;
  /* the last block's pool, while it has blocks out: blocks freed together
   * often share one, and the radix lookup is then skipped (producer and
   * consumer threads spent 41% of their time here with a lookup a block) */
  pa_pool *pool = NULL;
  while (block) {
    pa_block *next = pa_block_next(block);
#if PA_SECURE
    if (next != NULL && pa_arena_of(next) == NULL)
      _pa_secure_fault(PA_FAULT_BAD_FREE_LIST, pa_pool_of(block), block);
#endif
    if (pool == NULL || (uintptr_t)block - (uintptr_t)pool->start >= pa_pool_bytes(pool))
      pool = pa_pool_of(block);
    bool last = pool->count == 1; /* the free may give the pool away */
    pa_pool_free_local(heap, pool, block);
    if (last) pool = NULL;
    block = next;
  }
  heap->draining = false;
  if (heap->empty_kept > PA_HEAP_EMPTY_POOLS) _pa_pool_release_kept(heap, true);
}

/* Called with the heaps lock held.  An abandoned heap keeps no empty pool:
 * no thread of its own will allocate from it. */
static void heap_free_abandoned(pa_heap *heap, void *p) {
  pa_pool *pool = pa_pool_of(p);
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

void _pa_heap_free_remote(pa_heap *owner, void *p) {
  if (atomic_load_explicit(&owner->abandoned, memory_order_relaxed)) {
    pthread_mutex_lock(&heaps.lock);
    bool still_abandoned = atomic_load_explicit(&owner->abandoned, memory_order_relaxed);
    if (still_abandoned) heap_free_abandoned(owner, p);
    pthread_mutex_unlock(&heaps.lock);
    if (still_abandoned) return;
  }
  pa_block *block = p;
  pa_block *head = atomic_load_explicit(&owner->remote, memory_order_relaxed);
  do {
    pa_block_set_next(block, head);
  } while (!atomic_compare_exchange_weak_explicit(&owner->remote, &head, block,
                                                  memory_order_release, memory_order_relaxed));
}

/* Drains the remote stack and gives every empty pool back to the arenas. */
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

/* In a fork()ed child, with the heaps lock taken before the fork: the
 * heaps of the threads the child does not have will never see them again,
 * so they are abandoned for adoption.  Handle tables' heaps belong to no
 * thread and stay as they are. */
void _pa_heaps_fork_child(void) {
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

void _pa_heaps_exit_key(pthread_key_t key) {
  heaps.exit_key = key;
  atomic_store_explicit(&heaps.exit_key_set, true, memory_order_release);
}

/* A thread's first heap: an exited thread's, or a new one; the key makes
 * the thread's exit give it up (src/runtime.c's destructor). */
static pa_heap *heap_adopt(void) {
  pa_heap *heap = heap_take(&heaps.abandoned);
  if (heap == NULL) return NULL;
  heap->thread = _pa_os_thread_id();
  _pa_thread_heap = heap; /* before anything may call malloc */
  if (atomic_load_explicit(&heaps.exit_key_set, memory_order_acquire))
    pthread_setspecific(heaps.exit_key, heap);
  return heap;
}

pa_heap *_pa_heap_current(void) {
  pa_heap *heap = _pa_thread_heap;
  return heap != &_pa_empty_heap ? heap : heap_adopt();
}

pa_heap *_pa_heap_for_counting(void) { return thread_exited ? NULL : _pa_heap_current(); }

/* Everything the inline fast path does not for sizes 0..512: first use by a
 * thread, frees from other threads, exhausted pools, and taking a new pool
 * from the arenas. */
void *_pa_heap_malloc_slow(pa_heap *heap, size_t cls) {
  if (heap == &_pa_empty_heap) {
    heap = _pa_heap_current();
    if (heap == NULL) {
      errno = ENOMEM;
      return NULL;
    }
  }
  if (atomic_load_explicit(&heap->remote, memory_order_relaxed)) heap_drain_remote(heap);
  _pa_arenas_decay_due();
  _pa_large_decay_due();
  for (pa_pool *pool = heap->used[cls]; pool != &_pa_empty_pool; pool = heap->used[cls]) {
    void *block = pa_pool_take_block(pool);
    if (block) return block;
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

