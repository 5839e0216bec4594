/*
 * The inline fast paths: size classes, free-block links (encoded in secure
 * builds), a pool's take and free, the radix tree's lookup and the block
 * query built on it, and the malloc and free fast paths the domain entry
 * points and the override share.  Everything past these is out of line in
 * the files src/internal.h lists.
 */
#ifndef POOLALLOC_INLINE_H
#define POOLALLOC_INLINE_H

#include "internal.h"

#pragma GCC visibility push(hidden)

static inline size_t pa_size_class(size_t size) {
  return (size - 1) >> PA_ALIGNMENT_SHIFT;
}
/* The class a request of size bytes (1..512) takes through domain.  Every
 * domain but OBJ rounds up to a multiple of 16 (with 8-byte spacing, an odd
 * class), so each of its blocks of 16 bytes or more is 16-byte aligned, as
 * malloc's results must be wherever alignof(max_align_t) is 16 (x86-64):
 * pools and their headers are 16-aligned.  OBJ keeps the seeds' classes, 8
 * bytes apart, for callers whose objects need no more than 8.  One `or`
 * on the fast path; requests of 1..8 bytes then take 16, as in CPython 3.8+
 * (bpo-27987). */
static inline size_t pa_domain_class(pa_domain domain, size_t size) {
  size_t size_class = pa_size_class(size);
  return PA_ALIGNMENT == 8 && domain != PA_DOMAIN_OBJ ? size_class | 1 : size_class;
}
/* The spacing of the classes domain's requests take. */
static inline size_t pa_domain_spacing(pa_domain domain) {
  return domain == PA_DOMAIN_OBJ ? PA_ALIGNMENT : 16;
}
/* Medium classes (513 bytes to PA_LARGE_REQUEST_THRESHOLD): in the
 * doubling (2^b, 2^(b+1)], the quarter the size falls in. */
static inline size_t pa_medium_class(size_t size) {
  size_t s = size - 1;
  unsigned b = 63 - (unsigned)__builtin_clzll(s); /* 9 and up */
  return PA_SMALL_CLASSES + 4 * (b - 9) + ((s >> (b - 2)) & 3);
}
/* The class of any pool size (1 byte up to PA_LARGE_REQUEST_THRESHOLD). */
static inline size_t pa_class_of(pa_domain domain, size_t size) {
  return size <= PA_SMALL_REQUEST_THRESHOLD ? pa_domain_class(domain, size) : pa_medium_class(size);
}
static inline size_t pa_class_block_size(unsigned size_class) {
  if (size_class < PA_SMALL_CLASSES) return (size_t)(size_class + 1) << PA_ALIGNMENT_SHIFT;
  unsigned m = size_class - PA_SMALL_CLASSES, b = 9 + m / 4;
  return ((size_t)1 << b) + (size_t)(m % 4 + 1) * ((size_t)1 << (b - 2));
}
static inline size_t pa_pool_capacity(size_t block_size) {
  return PA_POOL_SIZE / block_size;
}
/* The bytes of pool's run (of one pool or more). */
static inline size_t pa_pool_bytes(const pa_pool *pool) {
  return (size_t)pool->run_pools << PA_POOL_BITS;
}
/* The offset of the pool's last block: carving past it, the pool is
 * carved out (0 for _pa_empty_pool, whose nextoffset is 1). */
static inline size_t pa_pool_last_offset(const pa_pool *pool) {
  return pa_pool_bytes(pool) - pool->block_size;
}

/* Free-block links as stored: plain, or in secure builds encoded with the
 * process's secret keys and the address they are stored at (glibc's
 * safe-linking and mimalloc's encoded free lists), so a link overwritten
 * through a dangling pointer decodes to garbage that the checks catch. */
#if PA_SECURE
extern struct _pa_secrets {
  uintptr_t link_keys[2];
  uint64_t canary;
} _pa_secrets;
#endif

static inline pa_block *pa_link_encode(const void *where, const pa_block *next) {
#if PA_SECURE
  uintptr_t x = ((uintptr_t)next ^ _pa_secrets.link_keys[1]) + ((uintptr_t)where >> 4);
  unsigned shift = (unsigned)(_pa_secrets.link_keys[0] & 63);
  return (pa_block *)(((x << shift) | (x >> ((64 - shift) & 63))) + _pa_secrets.link_keys[0]);
#else
  (void)where;
  return (pa_block *)next;
#endif
}

static inline pa_block *pa_link_decode(const void *where, const pa_block *stored) {
#if PA_SECURE
  uintptr_t x = (uintptr_t)stored - _pa_secrets.link_keys[0];
  unsigned shift = (unsigned)(_pa_secrets.link_keys[0] & 63);
  x = (x >> shift) | (x << ((64 - shift) & 63));
  return (pa_block *)((x - ((uintptr_t)where >> 4)) ^ _pa_secrets.link_keys[1]);
#else
  (void)where;
  return (pa_block *)stored;
#endif
}

static inline pa_block *pa_block_next(const pa_block *block) {
  return pa_link_decode(block, block->next);
}
static inline void pa_block_set_next(pa_block *block, const pa_block *next) {
  block->next = pa_link_encode(block, next);
}

#if PA_SECURE
static inline bool pa_secure_block_start(const pa_pool *pool, const void *p) {
  uintptr_t offset = (uintptr_t)p - (uintptr_t)pool->start;
  return offset <= pa_pool_last_offset(pool) &&
         (uint64_t)(uint32_t)offset * pool->divisor <= pool->divisor - 1;
}
/* The block's index: offset / block_size as a multiply-high by the same
 * divisor, exact for 32-bit offsets (Lemire, Kaser, Kurz 2019). */
static inline size_t pa_secure_index(const pa_pool *pool, const void *p) {
  uint64_t offset = (uint64_t)((uintptr_t)p - (uintptr_t)pool->start);
  return (size_t)(((unsigned __int128)offset * pool->divisor) >> 64);
}
static inline uint64_t pa_secure_bit(const pa_pool *pool, const void *p) {
  return (uint64_t)1 << (pa_secure_index(pool, p) & 63);
}
static inline _Atomic uint64_t *pa_secure_word(pa_pool *pool, const void *p) {
  return &pool->handed_out[pa_secure_index(pool, p) >> 6];
}
#endif

/* Secure builds: block, about to be handed out, must lie on a block start
 * of pool (a corrupted link or header fails here, before the link is read);
 * once it is off the free list it is marked handed out, and must not have
 * been.  In that order, so a fork() that catches another thread between
 * the steps leaves the child a block that is merely lost, never one both
 * free and handed out. */
static inline void pa_secure_check_take(pa_pool *pool, pa_block *block) {
#if PA_SECURE
  if (__builtin_expect(!pa_secure_block_start(pool, block), 0))
    _pa_secure_fault(PA_FAULT_BAD_FREE_LIST, pool, block);
#else
  (void)pool, (void)block;
#endif
}
static inline void pa_secure_mark_taken(pa_pool *pool, pa_block *block) {
#if PA_SECURE
  uint64_t bit = pa_secure_bit(pool, block);
  if (__builtin_expect(atomic_fetch_or_explicit(pa_secure_word(pool, block), bit,
                                                memory_order_relaxed) & bit, 0))
    _pa_secure_fault(PA_FAULT_BAD_FREE_LIST, pool, block);
#else
  (void)pool, (void)block;
#endif
}

/* Secure builds: before any free trusts pool's record, the record and p
 * are checked, and p is marked free: a second free of it fails here. */
static inline void pa_secure_free(pa_pool *pool, const void *p) {
#if PA_SECURE
  if (__builtin_expect(pool->canary != (_pa_secrets.canary ^ (uintptr_t)pool) ||
                           pool->size_class >= PA_NUM_CLASSES ||
                           pool->block_size != pa_class_block_size(pool->size_class),
                       0))
    _pa_secure_fault(PA_FAULT_BAD_HEADER, pool, p);
  if (__builtin_expect(!pa_secure_block_start(pool, p), 0))
    _pa_secure_fault(PA_FAULT_INVALID_FREE, pool, p);
  uint64_t bit = pa_secure_bit(pool, p);
  if (__builtin_expect(!(atomic_fetch_and_explicit(pa_secure_word(pool, p), ~bit,
                                                   memory_order_relaxed) & bit), 0))
    _pa_secure_fault(PA_FAULT_DOUBLE_FREE, pool, p);
#else
  (void)pool, (void)p;
#endif
}

/* The head of pool's free list, taken; pool->free must not be NULL. */
static inline void *pa_pool_pop(pa_pool *pool) {
  pa_block *block = pool->free;
  track_link_read(block);
  pa_secure_check_take(pool, block);
  pool->count++; /* first: then it compiles to one add to memory */
  pool->free = pa_block_next(block);
  pa_secure_mark_taken(pool, block);
  track_malloc(block, pool->block_size);
  return block;
}

static inline bool pa_pool_has_virgin(const pa_pool *pool) {
  return pool->nextoffset <= pa_pool_last_offset(pool);
}

/* The pool's next never-used block, carved; pa_pool_has_virgin must hold. */
static inline void *pa_pool_carve(pa_pool *pool) {
  pa_block *block = (pa_block *)(pool->start + pool->nextoffset);
  pool->nextoffset += pool->block_size;
  pool->count++;
  track_malloc(block, pool->block_size);
  return block;
}

/* Hands out a block from the free list, else carves a virgin one; NULL when
 * the pool has none left. */
static inline void *pa_pool_take_block(pa_pool *pool) {
  if (__builtin_expect(pool->free != NULL, 1)) return pa_pool_pop(pool);
  return pa_pool_has_virgin(pool) ? pa_pool_carve(pool) : NULL;
}

/* The OS page: carving stops at each one for the slow path to choose. */
#define PA_CARVE_PAGE 4096u

/* The allocation fast path's take from the head of a class list: as
 * pa_pool_take_block, but a virgin block is carved here only within the
 * page the last one carved touched.  The first block of a page goes to
 * the slow path, which hands out a page's worth of blocks freed into
 * another pool of the class instead, if one has them (src/heap.c): a run
 * carves fresh pages only while its class has no such blocks. */
static inline void *pa_pool_take_head(pa_pool *pool) {
  if (__builtin_expect(pool->free != NULL, 1)) return pa_pool_pop(pool);
  uint32_t next = pool->nextoffset;
  if (((next - 1) ^ (next + pool->block_size - 1)) < PA_CARVE_PAGE && pa_pool_has_virgin(pool))
    return pa_pool_carve(pool);
  return NULL;
}

/* The owner's free; transitions are out of line.  A pool going empty that is
 * the only one in its class list (no neighbours) stays (src/pool.c), so
 * that case is settled inline: a malloc/free loop of one size never
 * leaves this path. */
static inline void pa_pool_free_local(pa_heap *heap, pa_pool *pool, void *p) {
  pa_block *block = (pa_block *)p;
  pa_block_set_next(block, pool->free);
  pool->free = block;
  if (__builtin_expect(--pool->count == 0, 0)) {
    if (pool->next != NULL || pool->prev != NULL) _pa_pool_after_free(heap, pool);
  } else if (__builtin_expect(pool->state == PA_POOL_FULL, 0)) {
    _pa_pool_after_free(heap, pool);
  }
}
/* A free into a pool of a heap the caller stands for (a handle table's):
 * checked, described to the memory checkers, then done. */
static inline void pa_pool_free_owned(pa_heap *heap, pa_pool *pool, void *p) {
  pa_secure_free(pool, p);
  track_free(p, pool->block_size);
  pa_pool_free_local(heap, pool, p);
}

/* So a pool going empty was never full (pa_pool_free_local relies on it);
 * runs are made long enough to hold two blocks (src/pool.c). */
_Static_assert(POOLALLOC_POOL_SIZE / 512 >= 2, "every pool holds two blocks");

/* ---- A heap's blocks: the fast paths', and the features' that keep their
 * own (handle tables, free lists) ------------------------------------------ */

/* A block of class cls from heap, counted for domain; NULL if out of
 * memory.  A handle table's heap carves freely: its objects are laid out
 * by the caller, and no other thread's runs lie between them. */
static inline void *pa_heap_take_block(pa_heap *heap, size_t cls, pa_domain domain) {
  void *block = pa_pool_take_block(heap->used[cls]);
  if (block == NULL) block = _pa_heap_malloc_slow(heap, cls);
  if (block) heap->counts.allocations[domain]++;
  return block;
}

/* p, a block of pool, which heap owns (its thread's, or a handle table's
 * the caller stands for), back into it, counted for domain. */
static inline void pa_heap_free_block(pa_heap *heap, pa_pool *pool, void *p, pa_domain domain) {
  heap->counts.frees[domain]++;
  pa_pool_free_owned(heap, pool, p);
}

static inline bool pa_pool_owned_by(const pa_pool *pool, const pa_heap *heap) {
  return pool->owner == heap;
}

/* Chunk i of the free lists' bins for heap's thread: the heap keeps the
 * pointer, src/freelist.c what it points to. */
static inline void *pa_heap_freelist_chunk(const pa_heap *heap, unsigned i) {
  return atomic_load_explicit(&heap->freelist_chunks[i], memory_order_acquire);
}
static inline void pa_heap_freelist_chunk_set(pa_heap *heap, unsigned i, void *chunk) {
  atomic_store_explicit(&heap->freelist_chunks[i], chunk, memory_order_release);
}

static inline pa_heap *pa_counting_heap(void) {
  pa_heap *heap = _pa_thread_heap;
  return __builtin_expect(heap != &_pa_empty_heap, 1) ? heap : _pa_heap_for_counting();
}

/* ---- Address -> arena, and the block query ---------------------------- */

/* The arena holding p, or NULL; exact, and never reads the memory at p:
 * foreign pointers, NULL and addresses beyond 48 bits all answer NULL. */
static inline pa_arena *pa_arena_of(const void *p) {
  uintptr_t key = (uintptr_t)p >> PA_ARENA_BITS;
  uintptr_t root_index = key >> PA_RADIX_LEAF_BITS;
  if (__builtin_expect(root_index >= PA_RADIX_ROOT_LEN, 0)) return NULL;
  pa_radix_leaf *leaf;
  if (__builtin_expect(root_index == atomic_load_explicit(&_pa_radix_first_root, memory_order_acquire), 1)) {
    leaf = &_pa_radix_first_leaf;
  } else {
    leaf = atomic_load_explicit(&_pa_radix_root[root_index], memory_order_acquire);
    if (__builtin_expect(leaf == NULL, 0)) return NULL;
  }
  return atomic_load_explicit(&(*leaf)[key & (PA_RADIX_LEAF_LEN - 1)], memory_order_relaxed);
}

/* The free fast path's lookup: the arena holding p when p lies in the
 * first leaf's 8 GiB and the free path is open (src/radix.c), else NULL
 * (and the caller takes the domain's way, which looks p up in full). */
static inline pa_arena *pa_arena_of_fast(const void *p) {
  uintptr_t key = (uintptr_t)p >> PA_ARENA_BITS;
  if (__builtin_expect(key >> PA_RADIX_LEAF_BITS != atomic_load_explicit(&_pa_radix_free_root, memory_order_acquire), 0))
    return NULL;
  return atomic_load_explicit(&_pa_radix_first_leaf[key & (PA_RADIX_LEAF_LEN - 1)], memory_order_relaxed);
}

/* The index in its arena of the pool p lies in. */
static inline unsigned pa_pool_index(const void *p) {
  return (unsigned)((uintptr_t)p >> PA_POOL_BITS) & (PA_POOLS_PER_ARENA - 1);
}
/* The record that serves the pool of arena that p lies in: the pool's
 * own, or its run's first pool's. */
static inline pa_pool *pa_pool_in(pa_arena *arena, const void *p) {
  return (pa_pool *)((char *)arena->pools + arena->serving[pa_pool_index(p)]);
}
/* The value of `serving` for the pools of a run whose first is pool index
 * `first` (a pool on its own is a run of one). */
static inline uint16_t pa_serving_offset(unsigned first) {
  return (uint16_t)(first * sizeof(pa_pool));
}
/* The place in its run of the pool of arena at index: 0 for the first. */
static inline unsigned pa_run_index(const pa_arena *arena, unsigned index) {
  return index - arena->serving[index] / (unsigned)sizeof(pa_pool);
}
/* The record serving a p known to lie in poolalloc's arenas. */
static inline pa_pool *pa_pool_of(const void *p) {
  return pa_pool_in(pa_arena_of(p), p);
}

/* The block query: what poolalloc knows of a pointer into its arenas. */
typedef struct pa_block_info {
  pa_pool *pool;  /* the record of the pool (or run) the pointer lies in */
  char *start;    /* the block it lies in; NULL in a pool's tail, or a pool
                     that never had a class (an empty pool answers for the
                     class it had) */
  size_t size;    /* the pool's block size; 0 without a class */
  uint32_t in_use;    /* the pool's blocks handed out */
  uint8_t size_class; /* the pool's class, with a size */
  uint8_t state;  /* the pool's: enum pa_pool_state */
} pa_block_info;

/* True, and *out filled, for a pointer into poolalloc's arenas; false for
 * any other (NULL, foreign, unmapped), without reading the memory at p:
 * the answer comes from the arena's record.  Inlined, a caller that never
 * reads `start` pays no division. */
static inline bool pa_block_of(const void *p, pa_block_info *out) {
  pa_arena *arena = pa_arena_of(p);
  if (arena == NULL) return false;
  pa_pool *pool = pa_pool_in(arena, p);
  /* Decided by the block size, which stays while any block of the pool is
   * live, not by the state, which its owner changes as it fills (read
   * here for callers that want it, racily) */
  *out = (pa_block_info){.pool = pool, .state = pool->state, .size = pool->block_size};
  if (arena->large_size != 0) { /* a large span: one block */
    out->size = arena->large_size;
    out->start = pool->start;
    out->in_use = 1;
    return true;
  }
  if (out->size == 0) return true;
  out->in_use = pool->count;
  out->size_class = pool->size_class;
  uintptr_t index = ((uintptr_t)p - (uintptr_t)pool->start) / out->size;
  if (index < pa_pool_bytes(pool) / out->size) out->start = pool->start + index * out->size;
  return true;
}

/* ---- The fast paths, shared by the domain entry points and the override -- */

/* A block of size_class from the calling thread's pools, counted for
 * domain: the domain is known here, at the entry points, and nowhere
 * below. */
static inline void *pa_small_malloc(pa_domain domain, size_t size_class) {
  pa_heap *heap = _pa_thread_heap;
  void *block = pa_pool_take_head(heap->used[size_class]);
  if (__builtin_expect(block != NULL, 1)) {
    heap->counts.allocations[domain]++;
    return block;
  }
  return _pa_general_small_slow(heap, size_class, domain);
}

/* Past the limit test the default layer serves this domain, so an exhausted
 * pool goes straight to the slow path; a medium size too, while the limit
 * says the default layer serves (it is 0 otherwise). */
static inline void *pa_malloc_fast(pa_domain domain, size_t size) {
  size_t limit = atomic_load_explicit(&_pa_fast.small_request, memory_order_relaxed);
  if (__builtin_expect(size - 1 < limit, 1)) return pa_small_malloc(domain, pa_domain_class(domain, size));
  if (size - 1 < PA_LARGE_REQUEST_THRESHOLD && limit != 0) /* size 0 wraps past both */
    return pa_small_malloc(domain, pa_medium_class(size));
  return _pa_entry_malloc(size, domain);
}

/* p lies in the pool or run whose record is pool: a block anywhere in a
 * run of pools is freed inline like one in a single pool. */
static inline void pa_pool_free(pa_pool *pool, void *p, pa_domain domain) {
  pa_heap *heap = _pa_thread_heap;
  if (__builtin_expect(pa_pool_owned_by(pool, heap), 1)) {
    pa_heap_free_block(heap, pool, p, domain);
  } else {
    _pa_general_free_other(heap, pool, p, domain);
  }
}

static inline void pa_free_fast(pa_domain domain, void *p) {
  pa_arena *arena = pa_arena_of_fast(p);
  if (__builtin_expect(arena == NULL, 0)) {
    _pa_entry_free(p, domain);
    return;
  }
  pa_pool_free(pa_pool_in(arena, p), p, domain);
}

#pragma GCC visibility pop
#endif
