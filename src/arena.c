/*
 * Arenas: the memory poolalloc takes from the OS, carved into pools.
 *
 * Shared by all threads under one lock: a thread heap comes here only to take
 * an empty pool or give one back, which is rare next to block traffic.
 *
 * Which arena gives the next pool: the one with the fewest free pools, so
 * allocations pile into the fullest arenas and the emptiest ones get a chance
 * to become wholly free and go back to the OS.  The usable list is kept in
 * ascending order of free pools in O(1) per change with CPython's nfp2lasta
 * array (bpo-37029): last_with[n] is the rightmost arena with n free pools.
 *
 * When an arena's last pool comes back it stays, wholly free, at the tail of
 * the usable list (where it is the last to give pools) for the decay delay,
 * POOLALLOC_ARENA_DECAY_MS (10 ms by default, mimalloc's purge delay), and
 * goes back to the OS at the first arena event (a pool taken or returned)
 * or slow allocation (_pa_arenas_decay_due) after that.  A program whose large
 * structures die whole and are built again (a tree, a parse, a frame)
 * takes the same memory back warm, instead of unmapping it and faulting
 * fresh pages in each time: binary-trees on the collector took 72,000
 * page faults, and takes 4,000.  The newest wholly free arena is kept past
 * the delay as a spare, so a loop that allocates and frees across an arena
 * boundary does not map and unmap each time (CPython 3.9, bpo-37257).
 * With a delay of 0, every other wholly free arena goes at once, as in
 * CPython.  pa_collect() releases them all, the spare too.
 *
 * Wholly free arenas kept warm are bounded, so a program that frees most
 * of its memory and then goes idle (or only touches warm pools, which
 * reach no arena event) gets it back at once, with no timer or helper
 * thread: at most max(8 MiB, the arenas that hold live blocks) wait out the
 * delay, and the oldest beyond that go as soon as another one empties.  A
 * program that frees everything keeps 8 MiB warm at most; one that keeps
 * some of its heap may keep as much again warm (a garbage collector sizes
 * its heap to the live data the same way), which is what a structure
 * rebuilt beside long-lived data needs: binary-trees of depth 18 on the
 * collector takes 59,000 page faults so, and 125,000 with an eighth of the
 * peak as the bound.
 *
 * Arenas come from the arena allocator (pa_set_arena_allocator; mmap through
 * src/os.c by default).  The radix tree wants them aligned to their size; an
 * allocator that gives unaligned memory is asked again for twice the size,
 * and the aligned half inside is used.
 */
#include <errno.h>

#include "inline.h"

/* Secure builds keep a PROT_NONE page after each arena the OS gives, so an
 * overflow running off its end faults instead of reaching the next one. */
static size_t arena_guard(void) { return PA_SECURE ? _pa_os_page_size() : 0; }

static void *os_arena_alloc(void *ctx, size_t size) {
  (void)ctx;
  return _pa_os_map_aligned(size, PA_ARENA_SIZE, arena_guard());
}
static void os_arena_free(void *ctx, void *p, size_t size) {
  (void)ctx;
  _pa_os_unmap_aligned(p, size + arena_guard());
}
static const pa_arena_allocator os_arena_allocator = {NULL, os_arena_alloc, os_arena_free};

static struct {
  pthread_mutex_t lock;
  const pa_arena_allocator *source;           /* where new arenas come from */
  pa_arena *usable;                           /* head: fewest free pools */
  pa_arena *last_with[PA_POOLS_PER_ARENA + 1]; /* nfp2lasta */
  pa_arena *all;                              /* every arena held */
  pa_arena *unused;                           /* recycled records */
  /* wholly free arenas held: the usable list's tail, newest first */
  unsigned empty;
  /* arenas by their longest stretch of free pools, so a run finds one
   * with room without walking every arena (with_stretch[0]: none free) */
  pa_arena *with_stretch[PA_POOLS_PER_ARENA + 1];
  /* arenas with dirty pools (empty, pages resident), oldest first */
  pa_arena *dirty_oldest, *dirty_newest;
  unsigned dirty_count; /* their dirty pools */
  long decay_ms; /* pa_arena_decay_ms's; -1: POOLALLOC_ARENA_DECAY_MS's */
  size_t allocated_total, released, current, highwater;
} arenas = {.lock = PTHREAD_MUTEX_INITIALIZER, .source = &os_arena_allocator, .decay_ms = -1};

/* When the oldest wholly free arena (past the spare) has waited out the
 * delay; 0 when none waits.  Read without the lock by every slow
 * allocation, so it has a cache line of its own, written only when it
 * changes. */
static _Alignas(64) _Atomic uint64_t decay_due_ms;

void _pa_arenas_lock(void) { pthread_mutex_lock(&arenas.lock); }
void _pa_arenas_unlock(void) { pthread_mutex_unlock(&arenas.lock); }
pa_arena *_pa_arenas_usable_head(void) { return arenas.usable; }

#define ALL_POOLS (PA_POOLS_PER_ARENA == 64 ? ~(uint64_t)0 : ((uint64_t)1 << PA_POOLS_PER_ARENA) - 1)

/* The bits of npools pools from index on. */
static uint64_t run_mask(unsigned index, unsigned npools) {
  return (npools == 64 ? ~(uint64_t)0 : ((uint64_t)1 << npools) - 1) << index;
}

static pa_arena *arena_record(void) {
  pa_arena *arena = arenas.unused;
  if (arena) {
    arenas.unused = arena->next;
    return arena;
  }
  return _pa_meta_alloc(sizeof(pa_arena));
}

static void record_recycle(pa_arena *arena) {
  arena->base = 0;
  arena->next = arenas.unused;
  arenas.unused = arena;
}

pa_arena *_pa_arena_record_take(void) {
  pthread_mutex_lock(&arenas.lock);
  pa_arena *record = arena_record();
  pthread_mutex_unlock(&arenas.lock);
  return record;
}

void _pa_arena_record_give(pa_arena *record) {
  pthread_mutex_lock(&arenas.lock);
  record_recycle(record);
  pthread_mutex_unlock(&arenas.lock);
}

/* The first `chunks` arena-sized chunks from base, out of the radix tree;
 * with the arena lock held (the tree's writers hold it). */
static void chunks_unregister(uintptr_t base, size_t chunks) {
  for (size_t i = 0; i < chunks; i++) _pa_radix_unregister(base + (i << PA_ARENA_BITS));
}

bool _pa_arenas_register_span(pa_arena *span, uintptr_t base, size_t bytes) {
  size_t chunks = bytes >> PA_ARENA_BITS;
  pthread_mutex_lock(&arenas.lock);
  for (size_t i = 0; i < chunks; i++) {
    if (_pa_radix_register(base + (i << PA_ARENA_BITS), span)) continue;
    chunks_unregister(base, i);
    pthread_mutex_unlock(&arenas.lock);
    return false;
  }
  pthread_mutex_unlock(&arenas.lock);
  return true;
}

void _pa_arenas_unregister_span(uintptr_t base, size_t bytes) {
  pthread_mutex_lock(&arenas.lock);
  chunks_unregister(base, bytes >> PA_ARENA_BITS);
  pthread_mutex_unlock(&arenas.lock);
}

/* PA_ARENA_SIZE bytes aligned to PA_ARENA_SIZE, from the arena allocator;
 * what it returned goes to *arena's mapping fields. */
static void *arena_obtain(pa_arena *arena) {
  const pa_arena_allocator *source = arenas.source;
  void *mapping = source->alloc(source->ctx, PA_ARENA_SIZE);
  if (mapping == NULL) return NULL;
  size_t size = PA_ARENA_SIZE;
  if (((uintptr_t)mapping & (PA_ARENA_SIZE - 1)) != 0) {
    source->free(source->ctx, mapping, size);
    size = 2 * PA_ARENA_SIZE;
    mapping = source->alloc(source->ctx, size);
    if (mapping == NULL) return NULL;
  }
  arena->mapping = mapping;
  arena->mapping_size = size;
  arena->source = source;
  return (void *)(((uintptr_t)mapping + PA_ARENA_SIZE - 1) & ~(uintptr_t)(PA_ARENA_SIZE - 1));
}

static void arena_give_back(const pa_arena *arena) {
  arena->source->free(arena->source->ctx, arena->mapping, arena->mapping_size);
}

static pa_arena *arena_new(void) {
  _pa_secure_init();
  pa_arena *arena = arena_record();
  if (arena == NULL) return NULL;
  void *base = arena_obtain(arena);
  if (base == NULL || !_pa_radix_register((uintptr_t)base, arena)) {
    if (base) arena_give_back(arena);
    record_recycle(arena);
    errno = ENOMEM;
    return NULL;
  }
  track_noaccess(base, PA_ARENA_SIZE);
  *arena = (pa_arena){.mapping = arena->mapping,
                      .mapping_size = arena->mapping_size,
                      .source = arena->source,
                      .base = (uintptr_t)base,
                      .free_pools = ALL_POOLS,
                      .nfreepools = PA_POOLS_PER_ARENA,
                      .longest_free = PA_POOLS_PER_ARENA,
                      .ntotalpools = PA_POOLS_PER_ARENA,
                      .all_next = arenas.all};
  for (unsigned i = 0; i < PA_POOLS_PER_ARENA; i++) {
    arena->pools[i] = (pa_pool){.start = (char *)base + i * PA_POOL_SIZE,
                                .size_class = PA_CLASS_NONE,
                                .state = PA_POOL_UNTOUCHED,
                                .run_pools = 1};
    arena->serving[i] = pa_serving_offset(i);
  }
  if (arenas.all) arenas.all->all_prev = arena;
  arenas.all = arena;
  arenas.allocated_total++;
  if (++arenas.current > arenas.highwater) arenas.highwater = arenas.current;
  return arena;
}

static void usable_unlink(pa_arena *arena) {
  if (arena->prev)
    arena->prev->next = arena->next;
  else
    arenas.usable = arena->next;
  if (arena->next) arena->next->prev = arena->prev;
  arena->next = arena->prev = NULL;
}

static void usable_insert_after(pa_arena *arena, pa_arena *after) {
  arena->prev = after;
  arena->next = after->next;
  if (after->next) after->next->prev = arena;
  after->next = arena;
}

static void stretch_unlink(pa_arena *arena) {
  if (arena->fit_prev)
    arena->fit_prev->fit_next = arena->fit_next;
  else
    arenas.with_stretch[arena->longest_free] = arena->fit_next;
  if (arena->fit_next) arena->fit_next->fit_prev = arena->fit_prev;
  arena->fit_next = arena->fit_prev = NULL;
}

static void stretch_link(pa_arena *arena) {
  arena->fit_prev = NULL;
  arena->fit_next = arenas.with_stretch[arena->longest_free];
  if (arena->fit_next) arena->fit_next->fit_prev = arena;
  arenas.with_stretch[arena->longest_free] = arena;
}

static void dirty_change(pa_arena *arena, uint64_t mask, bool dirty);

/* Called only on a wholly free arena. */
static void arena_release(pa_arena *arena) {
  if (arenas.last_with[PA_POOLS_PER_ARENA] == arena) {
    pa_arena *newer = arena->prev;
    arenas.last_with[PA_POOLS_PER_ARENA] =
        newer && newer->nfreepools == PA_POOLS_PER_ARENA ? newer : NULL;
  }
  arenas.empty--;
  dirty_change(arena, arena->dirty_pools, false);
  stretch_unlink(arena);
  usable_unlink(arena);
  if (arena->all_prev)
    arena->all_prev->all_next = arena->all_next;
  else
    arenas.all = arena->all_next;
  if (arena->all_next) arena->all_next->all_prev = arena->all_prev;
  _pa_radix_unregister(arena->base);
  arena_give_back(arena);
  record_recycle(arena);
  arenas.released++;
  arenas.current--;
}

static long decay_ms(void) {
  return arenas.decay_ms >= 0 ? arenas.decay_ms : _pa_options.arena_decay_ms;
}

long _pa_arenas_decay_delay_ms(void) {
  pthread_mutex_lock(&arenas.lock);
  long ms = decay_ms();
  pthread_mutex_unlock(&arenas.lock);
  return ms;
}

/* The most wholly free arenas kept warm: max(8 MiB, the arenas in use). */
#define PA_KEEP_MIN_BYTES ((size_t)8 << 20)
static unsigned keep_limit(void) {
  size_t floor = PA_KEEP_MIN_BYTES / PA_ARENA_SIZE;
  size_t in_use = arenas.current - arenas.empty;
  return (unsigned)(floor > in_use ? floor : in_use);
}

/* Releases the oldest wholly free arenas: those beyond the bound, and
 * those empty for the decay delay or longer, keeping the newest as the
 * spare.  Returns when the next one is due, 0 if none waits. */
static uint64_t arenas_release_decayed(void) {
  uint64_t now = _pa_os_monotonic_ms();
  uint64_t delay = (uint64_t)decay_ms();
  unsigned limit = keep_limit();
  while (arenas.empty > 1) {
    pa_arena *oldest = arenas.last_with[PA_POOLS_PER_ARENA];
    if (arenas.empty <= limit && now - oldest->empty_since_ms < delay)
      return oldest->empty_since_ms + delay;
    arena_release(oldest);
  }
  return 0;
}

/* ---- Purging empty pools of arenas in use --------------------------------
 *
 * An empty pool in an arena that still holds live blocks keeps its pages
 * resident.  Its record lives apart, so nothing in those pages is needed:
 * once the arena's first dirty pool has waited out the decay delay, its
 * dirty pools are given back with madvise (the pages read as zero when
 * next used), and at once while more than dirty_limit() of them wait.
 * Wholly free arenas are left to the release above, which keeps a bounded number warm
 * for structures built again.  A user's arena allocator owns its memory:
 * its arenas are never purged. */

static bool purgeable(const pa_arena *arena) { return arena->source == &os_arena_allocator; }

static void dirty_unlink(pa_arena *arena) {
  if (arena->dirty_prev)
    arena->dirty_prev->dirty_next = arena->dirty_next;
  else
    arenas.dirty_oldest = arena->dirty_next;
  if (arena->dirty_next)
    arena->dirty_next->dirty_prev = arena->dirty_prev;
  else
    arenas.dirty_newest = arena->dirty_prev;
  arena->dirty_next = arena->dirty_prev = NULL;
}

/* Puts arena at the newest end of the purge queue, its wait begun now. */
static void dirty_append(pa_arena *arena) {
  arena->dirty_since_ms = _pa_os_monotonic_ms();
  arena->dirty_next = NULL;
  arena->dirty_prev = arenas.dirty_newest;
  if (arenas.dirty_newest)
    arenas.dirty_newest->dirty_next = arena;
  else
    arenas.dirty_oldest = arena;
  arenas.dirty_newest = arena;
}

/* mask's pools of arena became dirty (given back) or clean (taken again,
 * or purged); the queue follows.  An arena that gives back another pool
 * while its dirty ones wait starts its wait again, at the queue's newest
 * end: its dirty pools are purged once it has been quiet for the delay,
 * not while its heaps still empty and refill pools there (mimalloc
 * extends a segment's purge deadline on each new free page, for the same
 * reason). */
static void dirty_change(pa_arena *arena, uint64_t mask, bool dirty) {
  uint64_t before = arena->dirty_pools;
  uint64_t after = dirty ? before | mask : before & ~mask;
  if (dirty && !purgeable(arena)) return;
  arenas.dirty_count += (unsigned)__builtin_popcountll(after) - (unsigned)__builtin_popcountll(before);
  arena->dirty_pools = after;
  if (after == 0) {
    if (before != 0) dirty_unlink(arena);
  } else if (dirty) {
    if (before != 0) dirty_unlink(arena);
    dirty_append(arena);
  }
}

/* Each stretch of dirty pools of a partly used arena, given back. */
static void arena_purge(pa_arena *arena) {
  uint64_t dirty = arena->nfreepools == PA_POOLS_PER_ARENA ? 0 : arena->dirty_pools;
  while (dirty) {
    unsigned first = (unsigned)__builtin_ctzll(dirty);
    uint64_t rest = ~(dirty >> first);
    unsigned length = rest ? (unsigned)__builtin_ctzll(rest) : 64 - first;
    _pa_os_purge((char *)arena->base + first * PA_POOL_SIZE, length * PA_POOL_SIZE);
    dirty &= ~run_mask(first, length);
  }
  dirty_change(arena, arena->dirty_pools, false);
}

/* The most dirty pools that wait out the delay: max(8 MiB, half the
 * arenas held), so a busy heap's churn, which empties and refills pools
 * all the time, does not purge and fault them in again on every pool it
 * gives back: 8 threads of random sizes spent a third of their time in
 * the kernel with 8 MiB, and took 0.80 s with an eighth of the arenas,
 * 0.44-0.52 s with a quarter, 0.33-0.34 s with half (155 -> 196 MB peak
 * RSS; mimalloc 0.31 s and 340 MB). */
static unsigned dirty_limit(void) {
  size_t floor = PA_KEEP_MIN_BYTES / PA_POOL_SIZE;
  size_t share = arenas.current * PA_POOLS_PER_ARENA / 2;
  return (unsigned)(floor > share ? floor : share);
}

/* Purges the arenas whose dirty pools waited out the delay, or the oldest
 * while too many wait; returns when the next is due, 0 if none waits. */
static uint64_t arenas_purge_decayed(void) {
  uint64_t now = _pa_os_monotonic_ms();
  uint64_t delay = (uint64_t)decay_ms();
  while (arenas.dirty_oldest) {
    pa_arena *oldest = arenas.dirty_oldest;
    bool too_many = arenas.dirty_count > dirty_limit();
    if (!too_many && now - oldest->dirty_since_ms < delay) return oldest->dirty_since_ms + delay;
    arena_purge(oldest);
  }
  return 0;
}

/* Called at every arena event; reads the clock only when some arena
 * beyond the spare, or some dirty pool, waits. */
static void arenas_decay(void) {
  uint64_t release = arenas.empty > 1 ? arenas_release_decayed() : 0;
  uint64_t purge = arenas.dirty_oldest ? arenas_purge_decayed() : 0;
  uint64_t due = release && purge ? (release < purge ? release : purge) : release | purge;
  if (atomic_load_explicit(&decay_due_ms, memory_order_relaxed) != due)
    atomic_store_explicit(&decay_due_ms, due, memory_order_relaxed);
}

/* Takes arena off the usable list (it is on it while it has free pools). */
static void usable_remove(pa_arena *arena) {
  unsigned nf = arena->nfreepools;
  if (nf == 0) return;
  if (arenas.last_with[nf] == arena) {
    pa_arena *before = arena->prev;
    arenas.last_with[nf] = before && before->nfreepools == nf ? before : NULL;
  }
  usable_unlink(arena);
}

/* Puts arena back by its free pools, first among the arenas with as many:
 * so the wholly free ones stand newest first, and the oldest, the next
 * to go back to the OS, is last_with[PA_POOLS_PER_ARENA]. */
static void usable_insert(pa_arena *arena) {
  unsigned nf = arena->nfreepools;
  if (nf == 0) return; /* a full arena is on no list */
  pa_arena *after = NULL;
  for (unsigned k = nf - 1; k > 0 && after == NULL; k--) after = arenas.last_with[k];
  if (after) {
    usable_insert_after(arena, after);
  } else {
    arena->prev = NULL;
    arena->next = arenas.usable;
    if (arenas.usable) arenas.usable->prev = arena;
    arenas.usable = arena;
  }
  if (arenas.last_with[nf] == NULL) arenas.last_with[nf] = arena;
}

/* The lowest index, a multiple of alignment, of npools free pools in a row
 * in free, or -1: pools fill an arena from its start, so runs find room
 * at its end. */
static int run_find(uint64_t free, unsigned npools, unsigned alignment) {
  uint64_t starts = free;
  for (unsigned k = 1; k < npools && starts; k++) starts &= free >> k;
  uint64_t allowed = 0;
  for (unsigned i = 0; i < 64; i += alignment) allowed |= (uint64_t)1 << i;
  starts &= allowed;
  return starts ? __builtin_ctzll(starts) : -1;
}

/* The longest stretch of set bits in bits. */
static unsigned longest_stretch(uint64_t bits) {
  unsigned length = 0;
  for (; bits; length++) bits &= bits << 1;
  return length;
}

/* Changes arena's free pools by mask (taken or given back) and moves it
 * to its new place in the usable list. */
static void arena_change(pa_arena *arena, uint64_t mask, bool taken) {
  bool was_empty = arena->nfreepools == PA_POOLS_PER_ARENA;
  usable_remove(arena);
  arena->free_pools = taken ? arena->free_pools & ~mask : arena->free_pools | mask;
  dirty_change(arena, mask, !taken);
  arena->nfreepools = (unsigned)__builtin_popcountll(arena->free_pools);
  stretch_unlink(arena);
  arena->longest_free = longest_stretch(arena->free_pools);
  stretch_link(arena);
  usable_insert(arena);
  bool is_empty = arena->nfreepools == PA_POOLS_PER_ARENA;
  arenas.empty += is_empty - was_empty;
  if (is_empty) arena->empty_since_ms = _pa_os_monotonic_ms();
}

/* An arena with room for the run, else a new one; NULL if none can be
 * had.  A single pool comes from the fullest arena (the head of the usable
 * list); a longer run from the arenas whose longest free stretch is
 * shortest of those it fits, so long stretches stay whole for long runs. */
static pa_arena *arena_with_room(unsigned npools, unsigned alignment, int *index) {
  if (npools == 1 && arenas.usable) {
    *index = __builtin_ctzll(arenas.usable->free_pools);
    return arenas.usable;
  }
  for (unsigned length = npools; length <= PA_POOLS_PER_ARENA; length++)
    for (pa_arena *arena = arenas.with_stretch[length]; arena; arena = arena->fit_next)
      if ((*index = run_find(arena->free_pools, npools, alignment)) >= 0) return arena;
  pa_arena *fresh = arena_new();
  if (fresh == NULL) return NULL;
  stretch_link(fresh);
  usable_insert(fresh);
  arenas.empty++;
  *index = 0;
  return fresh;
}

pa_pool *_pa_arena_take_run(unsigned npools, unsigned alignment) {
  pthread_mutex_lock(&arenas.lock);
  arenas_decay();
  int index;
  pa_arena *arena = arena_with_room(npools, alignment, &index);
  if (arena == NULL) {
    pthread_mutex_unlock(&arenas.lock);
    errno = ENOMEM;
    return NULL;
  }
  arena_change(arena, run_mask((unsigned)index, npools), true);
  pthread_mutex_unlock(&arenas.lock);
  /* the run is the caller's now: its records are written without the
   * lock (a run of 16 pools writes 16 records, each a cache line) */
  pa_pool *first = &arena->pools[index];
  first->run_pools = (uint8_t)npools;
  for (unsigned k = 1; k < npools; k++) {
    first[k].state = PA_POOL_RUN;
    first[k].owner = NULL;
    first[k].run_pools = 0;
    arena->serving[index + k] = pa_serving_offset(index);
  }
  return first;
}

static pa_arena *arena_of_pool(const pa_pool *pool) {
  return pa_arena_of(pool->start);
}

/* The records of a run being given back, made empty pools of their own
 * by the run's owner before it takes the lock; but the first's length and
 * link, which run_give_back reads under the lock. */
static void run_reset(pa_pool *pool) {
  pa_arena *arena = arena_of_pool(pool);
  unsigned index = (unsigned)(pool - arena->pools);
  pool->state = PA_POOL_EMPTY;
  pool->prev = NULL;
  for (unsigned k = 1; k < pool->run_pools; k++) {
    pool[k].state = PA_POOL_EMPTY;
    pool[k].next = pool[k].prev = NULL;
    pool[k].run_pools = 1;
    arena->serving[index + k] = pa_serving_offset(index + k);
  }
}

/* With the lock held, after run_reset. */
static void run_give_back(pa_pool *pool) {
  pa_arena *arena = arena_of_pool(pool);
  unsigned npools = pool->run_pools;
  pool->run_pools = 1;
  pool->next = NULL;
  arena_change(arena, run_mask((unsigned)(pool - arena->pools), npools), false);
}

void _pa_arena_return_run(pa_pool *pool) {
  run_reset(pool);
  pthread_mutex_lock(&arenas.lock);
  run_give_back(pool);
  arenas_decay();
  pthread_mutex_unlock(&arenas.lock);
}

void _pa_arena_return_runs(pa_pool *list) {
  for (pa_pool *pool = list; pool; pool = pool->next) run_reset(pool);
  pthread_mutex_lock(&arenas.lock);
  while (list) {
    pa_pool *next = list->next;
    run_give_back(list);
    list = next;
  }
  arenas_decay();
  pthread_mutex_unlock(&arenas.lock);
}

long pa_arena_decay_ms(long ms) {
  pthread_mutex_lock(&arenas.lock);
  long previous = decay_ms();
  if (ms >= 0 && ms <= PA_ARENA_DECAY_MAX_MS)
    arenas.decay_ms = ms;
  else if (ms != -1)
    errno = EINVAL;
  pthread_mutex_unlock(&arenas.lock);
  return previous;
}

unsigned _pa_arena_pools_in_use(const pa_pool *pool) {
  const pa_arena *arena = arena_of_pool(pool);
  return arena->ntotalpools - arena->nfreepools;
}

size_t _pa_arenas_empty_count(void) {
  pthread_mutex_lock(&arenas.lock);
  size_t empty = arenas.empty;
  pthread_mutex_unlock(&arenas.lock);
  return empty;
}

void _pa_arenas_decay_idle(void) {
  pthread_mutex_lock(&arenas.lock);
  arenas_decay();
  pthread_mutex_unlock(&arenas.lock);
}

void _pa_arenas_decay_due(void) {
  uint64_t due = atomic_load_explicit(&decay_due_ms, memory_order_relaxed);
  if (due != 0 && _pa_os_monotonic_ms() >= due) _pa_arenas_decay_idle();
}

void _pa_arenas_release_empty(void) {
  pthread_mutex_lock(&arenas.lock);
  while (arenas.empty > 0) arena_release(arenas.last_with[PA_POOLS_PER_ARENA]);
  pthread_mutex_unlock(&arenas.lock);
}

RACY_READS static pa_pool_view pool_view(const pa_arena *arena, unsigned index) {
  const pa_pool *pool = &arena->pools[index];
  uint8_t state = pool->state;
  if (state == PA_POOL_EMPTY || state == PA_POOL_UNTOUCHED)
    return (pa_pool_view){.state = state, .run_pools = 1};
  unsigned run_index = pa_run_index(arena, index);
  pool -= run_index;
  /* Runs are set up and given back by their owners without the lock: a
   * walk may meet a run's first pool not yet given its class or heap, or
   * a later pool marked as a run's before its serving entry points to the
   * first (its thread is between two steps, or was when the process
   * forked).  Such a pool shows as the empty pool it was. */
  state = pool->state;
  uint8_t size_class = pool->size_class;
  const pa_heap *owner = pool->owner;
  if ((state != PA_POOL_USED && state != PA_POOL_FULL) || size_class >= PA_NUM_CLASSES || owner == NULL)
    return (pa_pool_view){.state = state == PA_POOL_UNTOUCHED ? state : PA_POOL_EMPTY, .run_pools = 1};
  return (pa_pool_view){.state = state,
                        .size_class = size_class,
                        .run_pools = pool->run_pools,
                        .run_index = (uint8_t)run_index,
                        .in_use = pool->count,
                        .heap = owner->id};
}

void _pa_arenas_walk(void (*visit)(void *ctx, uintptr_t arena, unsigned index,
                                   const pa_pool_view *pool),
                     void *ctx) {
  for (const pa_arena *arena = arenas.all; arena; arena = arena->all_next)
    for (unsigned i = 0; i < PA_POOLS_PER_ARENA; i++) {
      pa_pool_view view = pool_view(arena, i);
      visit(ctx, arena->base, i, &view);
    }
}

void _pa_arenas_each_run(void (*visit)(pa_pool *first)) {
  for (pa_arena *arena = arenas.all; arena; arena = arena->all_next)
    for (unsigned i = 0; i < PA_POOLS_PER_ARENA; i++) {
      pa_pool *pool = &arena->pools[i];
      if (pool->state == PA_POOL_USED || pool->state == PA_POOL_FULL) visit(pool);
    }
}

void _pa_arenas_counters(struct pa_stats *out) {
  out->arenas_allocated_total = arenas.allocated_total;
  out->arenas_released = arenas.released;
  out->arenas_highwater = arenas.highwater;
  out->arenas_current = arenas.current;
}

/* The invariant the list promises: ascending free pools, and last_with[n]
 * naming the rightmost arena with n.  Called with the lock held. */
bool _pa_arenas_check_order(void) {
  pa_arena *expected_last[PA_POOLS_PER_ARENA + 1] = {0};
  for (pa_arena *a = arenas.usable; a; a = a->next) {
    if (a->nfreepools == 0 || (a->next && a->next->nfreepools < a->nfreepools)) return false;
    if (a->next && a->next->prev != a) return false;
    expected_last[a->nfreepools] = a;
  }
  for (unsigned n = 0; n <= PA_POOLS_PER_ARENA; n++)
    if (arenas.last_with[n] != expected_last[n]) return false;
  return true;
}

void pa_get_arena_allocator(pa_arena_allocator *out) {
  pthread_mutex_lock(&arenas.lock);
  *out = *arenas.source;
  pthread_mutex_unlock(&arenas.lock);
}

/* The record is copied and kept for good: arenas made with it release
 * through it, whatever is set later. */
int pa_set_arena_allocator(const pa_arena_allocator *allocator) {
  if (allocator == NULL || allocator->alloc == NULL || allocator->free == NULL) {
    errno = EINVAL;
    return -1;
  }
  pa_arena_allocator *copy = _pa_meta_alloc(sizeof *copy);
  if (copy == NULL) {
    errno = ENOMEM;
    return -1;
  }
  *copy = *allocator;
  pthread_mutex_lock(&arenas.lock);
  arenas.source = copy;
  pthread_mutex_unlock(&arenas.lock);
  return 0;
}
