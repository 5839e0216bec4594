/*
 * poolalloc internals: every constant, every structure, and the prototypes
 * that cross file boundaries.  The picture first (numbers are the defaults):
 *
 *   request path:  public API (alloc.c, override.c) ──> domain RAW / MEM / OBJ
 *     (domain.c: the default layer, or a chain on top of it: a user's
 *     pa_set_allocator, debug.c, trace.c) ──> general allocator (alloc.c)
 *     ──> thread heap (heap.c) ──> pool (pool.c) ──> arena (arena.c) ──> OS
 *
 *   OS ──mmap──> arena (256 KiB, aligned to 256 KiB) ──carved into──> 64 pools
 *
 *   arena  [pool 0][pool 1][pool 2] ... [pool 63]        4 KiB each
 *   pool   [header 48 B][block][block][block]...[waste]  one size class each
 *
 *   radix tree:  address >> ARENA_BITS ──> arena record (or NULL: not ours)
 *
 *   thread heap (one per thread)
 *     used[class] ──> pool <──> pool <──> pool      doubly linked, O(1) unhook
 *     remote      ──> blocks freed by other threads (atomic stack)
 *
 *   arenas (shared, one lock)
 *     usable ──> arena <──> arena <──> arena   ascending by free pools
 *     all    ──> every arena held, doubly linked (the seeds' arena list)
 *     arena->freepools ──> pool ──> pool       empty pools, singly linked
 *
 * A pool is *used* (in its heap's class list: at least one block free),
 * *full* (in no list) or *empty* (on its arena's freepools stack, no class).
 * Full pools need no list: a free into one relinks it at the front of its
 * class list.  The one exception to "count == 0 means empty": a heap keeps
 * the last pool of a class in its list even when all its blocks are free, so
 * a malloc/free loop of one size does not bounce the pool through the arena
 * lock on every call (CPython keeps one spare arena for the same reason).
 */
#ifndef POOLALLOC_INTERNAL_H
#define POOLALLOC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "poolalloc.h"
#include "track.h"

/* Nothing declared here leaves the shared library; it also lets the compiler
 * reach these globals without going through the GOT.  In the static library
 * they are global, so every one carries the reserved prefix _pa_, which no
 * program's own names take (tests/check_symbols.sh checks every library). */
#pragma GCC visibility push(hidden)

/* ---- Build-time geometry ------------------------------------------------ */

/* Spacing of the size classes.  8 is the seeds' value (64 classes, blocks of
 * 8, 16, ..., 512): the OBJ domain's classes, while MEM and RAW take every
 * other one (pa_domain_class below).  16 is CPython 3.8+'s on 64-bit (32
 * classes), which makes every domain's blocks 16-byte aligned at the cost
 * of more rounding waste for objects. */
#ifndef POOLALLOC_ALIGNMENT
#define POOLALLOC_ALIGNMENT 8
#endif
/* One pool serves one size class.  4 KiB is an OS page: the seeds' value. */
#ifndef POOLALLOC_POOL_SIZE
#define POOLALLOC_POOL_SIZE 4096
#endif
/* The unit taken from the OS.  256 KiB holds 64 pools of 4 KiB. */
#ifndef POOLALLOC_ARENA_SIZE
#define POOLALLOC_ARENA_SIZE (256 * 1024)
#endif

#define PA_ALIGNMENT ((size_t)POOLALLOC_ALIGNMENT)
#define PA_ALIGNMENT_SHIFT __builtin_ctzll(POOLALLOC_ALIGNMENT)
/* Requests above PA_SMALL_REQUEST_THRESHOLD (512, poolalloc.h; CPython's
 * since 3.3) go to the raw layer. */
#define PA_NUM_CLASSES (PA_SMALL_REQUEST_THRESHOLD / POOLALLOC_ALIGNMENT)

#define PA_POOL_SIZE ((size_t)POOLALLOC_POOL_SIZE)
#define PA_POOL_MASK (PA_POOL_SIZE - 1)
#define PA_ARENA_SIZE ((size_t)POOLALLOC_ARENA_SIZE)
#define PA_ARENA_BITS __builtin_ctzll(POOLALLOC_ARENA_SIZE)
#define PA_POOLS_PER_ARENA (POOLALLOC_ARENA_SIZE / POOLALLOC_POOL_SIZE)

_Static_assert(POOLALLOC_ALIGNMENT == 8 || POOLALLOC_ALIGNMENT == 16,
               "POOLALLOC_ALIGNMENT must be 8 or 16");
_Static_assert((POOLALLOC_POOL_SIZE & (POOLALLOC_POOL_SIZE - 1)) == 0 &&
                   POOLALLOC_POOL_SIZE >= 4096 && POOLALLOC_POOL_SIZE <= (1 << 20),
               "POOLALLOC_POOL_SIZE must be a power of two from 4 KiB to 1 MiB");
_Static_assert((POOLALLOC_ARENA_SIZE & (POOLALLOC_ARENA_SIZE - 1)) == 0 &&
                   POOLALLOC_ARENA_SIZE >= 2 * POOLALLOC_POOL_SIZE &&
                   POOLALLOC_ARENA_SIZE <= (1 << 30),
               "POOLALLOC_ARENA_SIZE must be a power of two, at least two pools, at most 1 GiB");

/* ---- Secure mode (-DPOOLALLOC_SECURE=ON, src/secure.c) ------------------ */

/* For programs that face hostile input: free-block links stored encoded, a
 * bit per block says whether it is handed out (so every double free and
 * every free of a pointer that is not a live block's start is caught), a
 * canary closes each pool header, fresh pools hand their blocks out in
 * random order, and each arena has a PROT_NONE page after it.  Any fault
 * found is reported and the process aborts: a heap known to be corrupt is
 * not worked on. */
#ifdef POOLALLOC_SECURE
#define PA_SECURE 1
#else
#define PA_SECURE 0
#endif
/* One bit per PA_ALIGNMENT bytes of a pool: every block starts on one. */
#define PA_SECURE_BITMAP_WORDS (POOLALLOC_POOL_SIZE / POOLALLOC_ALIGNMENT / 64)

/* ---- Pools ---------------------------------------------------------------- */

typedef struct pa_block {
  struct pa_block *next; /* the link lives in the first word of a free block */
} pa_block;

typedef struct pa_heap pa_heap;

enum pa_pool_state {
  PA_POOL_EMPTY = 0, /* on an arena's freepools stack */
  PA_POOL_USED = 1,  /* in its heap's class list */
  PA_POOL_FULL = 2,  /* in no list */
};

/* Lives at the start of every pool; 48 bytes (128 in secure builds), a
 * multiple of 16, so blocks whose size is a multiple of 16 are 16-byte
 * aligned. */
typedef struct pa_pool {
  pa_block *free;         /* blocks freed by the owner, reused first */
  struct pa_pool *next;   /* class list (used) or freepools stack (empty) */
  struct pa_pool *prev;   /* class list only */
  pa_heap *owner;         /* the heap that allocates from this pool */
  uint32_t count;         /* blocks handed out */
  uint32_t nextoffset;    /* first never-used ("virgin") block: bump carving */
  uint32_t maxnextoffset; /* nextoffset past this: the pool is carved out */
  uint16_t block_size;
  uint8_t size_class; /* PA_CLASS_NONE when never initialised */
  uint8_t state;      /* enum pa_pool_state */
#if PA_SECURE
  /* UINT64_MAX / block_size + 1: "is offset a multiple of block_size" with
   * a multiply instead of a division (Lemire, Kaser, Kurz 2019) */
  uint64_t divisor;
  /* bit i set: a block starting PA_ALIGNMENT * i bytes into the pool is
   * handed out.  Atomic: other threads' frees clear bits. */
  _Atomic uint64_t handed_out[PA_SECURE_BITMAP_WORDS];
  /* last, next to the first block, so an underflow reaches it first */
  uint64_t canary; /* the secret ^ the pool's address */
#endif
} pa_pool;

#define PA_POOL_HEADER_SIZE sizeof(pa_pool)
#define PA_CLASS_NONE 0xff
_Static_assert(sizeof(pa_pool) % 16 == 0, "pool header must keep 16-byte alignment");
_Static_assert(PA_NUM_CLASSES < PA_CLASS_NONE, "size class must fit a byte");

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
static inline size_t pa_class_block_size(unsigned size_class) {
  return (size_t)(size_class + 1) << PA_ALIGNMENT_SHIFT;
}
static inline size_t pa_pool_capacity(size_t block_size) {
  return (PA_POOL_SIZE - PA_POOL_HEADER_SIZE) / block_size;
}
static inline pa_pool *pa_pool_of(const void *p) {
  return (pa_pool *)((uintptr_t)p & ~(uintptr_t)PA_POOL_MASK);
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

/* Secure builds: the faults, reported with the address and the pool's
 * block size, then abort (src/secure.c). */
enum pa_secure_fault {
  PA_FAULT_DOUBLE_FREE,   /* the block is not handed out */
  PA_FAULT_INVALID_FREE,  /* not the start of a block of its pool */
  PA_FAULT_BAD_HEADER,    /* the pool header fails its checks */
  PA_FAULT_BAD_FREE_LIST, /* a free-list link leads outside its pool's free blocks */
};
#if PA_SECURE
__attribute__((noreturn, cold)) void _pa_secure_fault(enum pa_secure_fault fault, const pa_pool *pool,
                                                  const void *p);
/* Sets the secrets, once; called before the first block can exist. */
void _pa_secure_init(void);
/* A fresh pool's blocks, all on its free list in random order. */
void _pa_secure_shuffle_pool(pa_pool *pool, pa_heap *owner);

static inline bool pa_secure_block_start(const pa_pool *pool, const void *p) {
  uintptr_t offset = (uintptr_t)p - (uintptr_t)pool;
  return offset >= sizeof(pa_pool) && offset < POOLALLOC_POOL_SIZE &&
         (uint64_t)(uint32_t)(offset - sizeof(pa_pool)) * pool->divisor <= pool->divisor - 1;
}
static inline uint64_t pa_secure_bit(const pa_pool *pool, const void *p) {
  return (uint64_t)1 << ((((uintptr_t)p - (uintptr_t)pool) >> PA_ALIGNMENT_SHIFT) & 63);
}
static inline _Atomic uint64_t *pa_secure_word(pa_pool *pool, const void *p) {
  return &pool->handed_out[((uintptr_t)p - (uintptr_t)pool) >> PA_ALIGNMENT_SHIFT >> 6];
}
#else
static inline void _pa_secure_init(void) {}
#endif

/* Secure builds: block, about to be handed out, must lie on a block start
 * of pool (a corrupted link or header fails here, before the link is read);
 * once it is off the free list it is marked handed out, and must not have
 * been.  In that order, so a fork() that catches another thread between
 * the steps leaves the child a block that is merely lost, never one both
 * free and handed out. */
static inline void pa_secure_check_take(pa_pool *pool, pa_block *block) {
#if PA_SECURE
  if (__builtin_expect(pa_pool_of(block) != pool || !pa_secure_block_start(pool, block), 0))
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

/* Secure builds: before any free trusts pool's header, the header and p
 * are checked, and p is marked free: a second free of it fails here. */
static inline void pa_secure_free(pa_pool *pool, const void *p) {
#if PA_SECURE
  if (__builtin_expect(pool->canary != (_pa_secrets.canary ^ (uintptr_t)pool) ||
                           pool->size_class >= PA_NUM_CLASSES ||
                           pool->block_size != ((unsigned)pool->size_class + 1) << PA_ALIGNMENT_SHIFT,
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

/* Hands out a block from the free list, else carves a virgin one; NULL when
 * the pool has none left.  Inlined: this is the allocation fast path. */
static inline void *pa_pool_take_block(pa_pool *pool) {
  pa_block *block = pool->free;
  if (__builtin_expect(block != NULL, 1)) {
    track_link_read(block);
    pa_secure_check_take(pool, block);
    pool->count++; /* first: then it compiles to one add to memory */
    pool->free = pa_block_next(block);
    pa_secure_mark_taken(pool, block);
    track_malloc(block, pool->block_size);
    return block;
  }
  if (__builtin_expect(pool->nextoffset <= pool->maxnextoffset, 1)) {
    block = (pa_block *)((char *)pool + pool->nextoffset);
    pool->nextoffset += pool->block_size;
    pool->count++;
    track_malloc(block, pool->block_size);
    return block;
  }
  return NULL;
}

void _pa_pool_init(pa_pool *pool, pa_heap *owner, unsigned size_class);
void _pa_pool_link_front(pa_heap *heap, pa_pool *pool);
void _pa_pool_unlink(pa_heap *heap, pa_pool *pool);
void _pa_pool_mark_full(pa_heap *heap, pa_pool *pool);
void _pa_pool_after_free(pa_heap *heap, pa_pool *pool);
void _pa_pool_release_empty(pa_heap *heap, pa_pool *pool);
extern pa_pool _pa_empty_pool;

/* The owner's free; transitions are out of line.  A pool going empty that is
 * the only one in its class list (no neighbours) stays, so that case is
 * settled inline: a malloc/free loop of one size never leaves this path. */
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

/* So a pool going empty was never full (pa_pool_free_local relies on it). */
_Static_assert((POOLALLOC_POOL_SIZE - sizeof(pa_pool)) / 512 >= 2, "every pool holds two blocks");

/* ---- Thread heaps -------------------------------------------------------- */

/* One thread's objects of one free-list index (src/freelist.c), linked
 * through their first word.  Owned by the heap's thread; statistics read
 * the counters racily. */
struct freelist_bin {
  pa_block *head;
  uint32_t count;
  size_t hits, misses, overflows;
};
#define PA_FREELIST_BINS_PER_CHUNK 64
#define PA_FREELIST_CHUNKS (PA_FREELIST_MAX_SIZES / PA_FREELIST_BINS_PER_CHUNK)

/* What a thread counts of its own traffic, in its heap record: plain
 * counters only that thread writes (statistics read them racily and sum
 * every heap's), so no request writes a cache line another thread writes.
 * Arrays are indexed by domain. */
struct pa_heap_counts {
  size_t allocations[3];       /* blocks taken from the pools (RAW's slot stays 0) */
  size_t frees[3];             /* blocks given back to any heap's pools */
  size_t large_allocations[3]; /* MEM and OBJ requests sent on to the raw domain */
  size_t large_frees[3];       /* the frees of those */
  size_t raw_allocations, raw_frees;
  size_t raw_bytes_allocated, raw_bytes_freed; /* as the raw allocator sized them */
  size_t raw_bytes_published; /* the net of those last added to the shared total (raw.c) */
};

struct pa_heap {
  pa_pool *used[PA_NUM_CLASSES];      /* first used pool per class, or &_pa_empty_pool */
  pa_pool *used_tail[PA_NUM_CLASSES]; /* last used pool per class, or NULL */
  struct pa_heap_counts counts;
  /* free-list bins by global bin number, in chunks made on first use and
   * never freed (statistics may read them at any time) */
  _Atomic(struct freelist_bin *) freelist_bins[PA_FREELIST_CHUNKS];
#if PA_SECURE
  uint64_t random; /* the state of its fresh pools' shuffles */
#endif
  /* What other threads write, on a cache line of its own: a free into
   * this heap's pools never touches the lines its owner writes. */
  _Alignas(64) _Atomic(pa_block *) remote; /* blocks other threads freed into our pools */
  atomic_bool abandoned; /* its thread exited; waits for adoption */
  _Alignas(64) pa_heap *next_all; /* every heap ever made (heaps are recycled) */
  pa_heap *next_abandoned;
  unsigned id;    /* 1, 2, ... in order of creation: names it in statistics */
  bool table;     /* a handle table's heap (src/handle.c), no thread's */
  int thread;     /* kernel id of the thread using it; 0 while abandoned */
};

/* The calling thread's heap; &_pa_empty_heap until its first slow path, so the
 * fast path needs no "initialised?" test (mimalloc's trick). */
extern _Thread_local pa_heap *_pa_thread_heap __attribute__((tls_model("initial-exec")));
extern pa_heap _pa_empty_heap;

void *_pa_heap_malloc_slow(pa_heap *heap, size_t size, pa_domain domain);
/* The calling thread's heap, made or adopted if it has none; NULL if out of
 * memory. */
pa_heap *_pa_heap_current(void);
/* The same for a thread that only counts its traffic, except past the
 * thread's exit destructor (a heap made then would never be given up):
 * NULL there, and the caller counts in its shared late counters. */
pa_heap *_pa_heap_for_counting(void);
static inline pa_heap *pa_counting_heap(void) {
  pa_heap *heap = _pa_thread_heap;
  return __builtin_expect(heap != &_pa_empty_heap, 1) ? heap : _pa_heap_for_counting();
}
/* A heap for a handle table (a retired table's, or a new one), and its
 * retirement: its empty pools go back, the record waits for the next table. */
pa_heap *_pa_heap_table_make(void);
void _pa_heap_table_retire(pa_heap *heap);
void _pa_heap_free_remote(pa_heap *self, pa_heap *owner, void *p, pa_domain domain);
void _pa_heap_collect(pa_heap *heap);
void _pa_heaps_collect_abandoned(void);
/* The list of every heap, newest first, for statistics: heaps are never
 * freed, so ids run 1..n without gaps. */
void _pa_heaps_lock(void);
void _pa_heaps_unlock(void);
pa_heap *_pa_heaps_first(void);
size_t _pa_heaps_count(void);
size_t _pa_heaps_late_frees(pa_domain domain);

/* ---- Arenas -------------------------------------------------------------- */

typedef struct pa_arena {
  uintptr_t base;             /* PA_ARENA_SIZE aligned */
  uintptr_t pool_address;     /* next never-carved pool */
  unsigned nfreepools;        /* empty pools on freepools + never-carved pools */
  unsigned ntotalpools;
  pa_pool *freepools;         /* empty pools, singly linked */
  struct pa_arena *next;      /* usable list, ascending nfreepools */
  struct pa_arena *prev;
  struct pa_arena *all_next;  /* every arena held */
  struct pa_arena *all_prev;
  void *mapping;              /* what the arena allocator returned: base, or */
  size_t mapping_size;        /* a region twice as large holding it */
  const pa_arena_allocator *source; /* the allocator that made it */
  uint64_t empty_since_ms;    /* when its last pool came back (wholly free) */
} pa_arena;

pa_pool *_pa_arena_take_pool(void);
void _pa_arena_return_pool(pa_pool *pool);
/* Releases every wholly free arena now, the spare and the decaying ones. */
void _pa_arenas_release_empty(void);
/* Releases the wholly free arenas past the decay delay, as a pool taken or
 * returned would: for a thread that wakes while the program is idle. */
void _pa_arenas_decay_idle(void);
/* The same, taking the lock only when an arena's delay has run out: for
 * the slow allocation path, so a program that goes on allocating from warm
 * pools gives the memory back too. */
void _pa_arenas_decay_due(void);
/* Wholly free arenas held: the spare and those waiting out the decay. */
size_t _pa_arenas_empty_count(void);
void _pa_arenas_lock(void);
void _pa_arenas_unlock(void);
pa_arena *_pa_arenas_first(void);
void _pa_arenas_counters(struct pa_stats *out);
bool _pa_arenas_check_order(void);
pa_arena *_pa_arenas_usable_head(void);

/* ---- Raw layer (large requests, foreign pointers) ------------------------ */

void *_pa_raw_malloc(size_t size);
void *_pa_raw_calloc(size_t count, size_t size);
void *_pa_raw_realloc(void *p, size_t size);
void *_pa_raw_aligned(size_t alignment, size_t size);
void _pa_raw_free(void *p);
size_t _pa_raw_usable_size(const void *p);
void _pa_raw_counters(struct pa_stats *out);

/* ---- Address -> arena ---------------------------------------------------- */

#define PA_ADDRESS_BITS 48
#define PA_RADIX_KEY_BITS (PA_ADDRESS_BITS - PA_ARENA_BITS)
#define PA_RADIX_LEAF_BITS (PA_RADIX_KEY_BITS / 2)
#define PA_RADIX_ROOT_BITS (PA_RADIX_KEY_BITS - PA_RADIX_LEAF_BITS)
#define PA_RADIX_ROOT_LEN ((size_t)1 << PA_RADIX_ROOT_BITS)
#define PA_RADIX_LEAF_LEN ((size_t)1 << PA_RADIX_LEAF_BITS)

typedef _Atomic(pa_arena *) pa_radix_leaf[PA_RADIX_LEAF_LEN];
extern _Atomic(pa_radix_leaf *) _pa_radix_root[PA_RADIX_ROOT_LEN];

/* The arena holding p, or NULL; exact, and never reads the memory at p:
 * foreign pointers, NULL and addresses beyond 48 bits all answer NULL.
 * root_limit is PA_RADIX_ROOT_LEN, or 0 to answer NULL for everything (see
 * _pa_fast below). */
static inline pa_arena *pa_arena_lookup(const void *p, uintptr_t root_limit) {
  uintptr_t key = (uintptr_t)p >> PA_ARENA_BITS;
  uintptr_t root_index = key >> PA_RADIX_LEAF_BITS;
  if (__builtin_expect(root_index >= root_limit, 0)) return NULL;
  pa_radix_leaf *leaf = atomic_load_explicit(&_pa_radix_root[root_index], memory_order_acquire);
  if (__builtin_expect(leaf == NULL, 0)) return NULL;
  return atomic_load_explicit(&(*leaf)[key & (PA_RADIX_LEAF_LEN - 1)], memory_order_relaxed);
}

static inline pa_arena *pa_arena_of(const void *p) {
  return pa_arena_lookup(p, PA_RADIX_ROOT_LEN);
}

bool _pa_radix_register(uintptr_t base, pa_arena *arena);
void _pa_radix_unregister(uintptr_t base);
size_t _pa_radix_leaves(void);

/* Every function between a public entry point and the layers on top of the
 * domains goes in this section, so tracing can tell poolalloc's frames from
 * the caller's (src/trace.c). */
#define PA_ENTRY __attribute__((section("poolalloc_entry")))

/* ---- Domains and their allocators (src/domain.c) ------------------------- */

/* One allocator in a domain's chain: the struct users see (api) plus what
 * poolalloc needs beyond it.  Those two are NULL for allocators set with
 * pa_set_allocator; `below` (the layer that was current then) answers. */
typedef struct pa_layer {
  pa_allocator api;
  void *(*aligned)(void *ctx, size_t alignment, size_t size);
  size_t (*usable_size)(void *ctx, const void *p);
  const struct pa_layer *below;
} pa_layer;

/* The fast paths compare against these limits instead of constants, which
 * costs nothing (a compare with memory instead of an immediate).  While any
 * allocator other than the default serves MEM or OBJ (a user's, the debug
 * hooks, tracing), and before the options are read, both are 0: every call
 * then fails its fast test and reaches _pa_domain_malloc/_pa_domain_free, which
 * dispatch through the domain's allocator. */
struct pa_fast_limits {
  _Atomic size_t small_request; /* PA_SMALL_REQUEST_THRESHOLD, or 0 */
  _Atomic uintptr_t radix_root; /* PA_RADIX_ROOT_LEN, or 0 */
};
extern struct pa_fast_limits _pa_fast;

void *_pa_domain_malloc(size_t size, pa_domain domain);
void _pa_domain_free(void *p, pa_domain domain);
/* The layer serving a domain now (reading the options first if need be). */
const pa_layer *_pa_domain_layer(pa_domain domain);
bool _pa_domain_is_default(const pa_layer *layer, pa_domain domain);
/* Layers that go on top of all three domains at once: debug, tracing.
 * _pa_domains_push fills layers[] from `functions`, each layer its own ctx, and
 * sets their `below`; _pa_domains_remove takes them off if still on top. */
void _pa_domains_push(pa_layer layers[3], const pa_layer *functions);
void _pa_domains_remove(const pa_layer layers[3]);
bool _pa_domains_contain(const pa_layer *layer, pa_domain domain);
void *_pa_layer_aligned(const pa_layer *layer, size_t alignment, size_t size);
/* Whether the pools or the raw layer have served anything yet. */
bool _pa_allocations_served(void);
void _pa_debug_install(void);
/* After a report of misuse outside the hooks (free lists, handles): under
 * the debug hooks the process aborts, as the hooks' own reports do. */
void _pa_debug_misuse_end(void);
bool _pa_debug_hooks_on(void);
void _pa_domains_lock(void);
void _pa_domains_unlock(void);
void _pa_trace_lock(void);
void _pa_trace_unlock(void);
/* Blocks of the pools that tracing knows the requested size of, and the
 * bytes their size classes add to it (0, 0 when not tracing). */
void _pa_trace_rounding(size_t *blocks, size_t *bytes);
/* Writes where p was allocated, if tracing knows; false if it does not. */
bool _pa_trace_report_block(const void *p);
size_t _pa_layer_usable_size(const pa_layer *layer, const void *p);

/* The general allocator: MEM's and OBJ's default (src/alloc.c). */
void *_pa_general_malloc(size_t size, pa_domain domain);
void *_pa_general_calloc(size_t count, size_t size, pa_domain domain);
void *_pa_general_realloc(void *p, size_t size, pa_domain domain);
void _pa_general_free(void *p, pa_domain domain);
void *_pa_general_aligned(size_t alignment, size_t size, pa_domain domain);
size_t _pa_general_usable_size(const void *p);
/* Requests the general allocator sent on to the raw domain, by domain. */
void _pa_general_counters(struct pa_stats *out);

/* ---- The fast paths, shared by the domain entry points and the override -- */

static inline void *pa_heap_take_small(pa_heap *heap, size_t size, pa_domain domain) {
  void *block = pa_pool_take_block(heap->used[pa_domain_class(domain, size)]);
  if (__builtin_expect(block != NULL, 1)) heap->counts.allocations[domain]++;
  return block;
}

/* Past the limit test the default layer serves this domain, so an exhausted
 * pool goes straight to the heap's slow path. */
static inline void *pa_malloc_fast(pa_domain domain, size_t size) {
  size_t limit = atomic_load_explicit(&_pa_fast.small_request, memory_order_relaxed);
  if (__builtin_expect(size - 1 < limit, 1)) {
    pa_heap *heap = _pa_thread_heap;
    void *block = pa_heap_take_small(heap, size, domain);
    if (__builtin_expect(block != NULL, 1)) return block;
    return _pa_heap_malloc_slow(heap, size, domain);
  }
  return _pa_domain_malloc(size, domain);
}

/* p is a block of pool. */
static inline void pa_pool_free(pa_pool *pool, void *p, pa_domain domain) {
  pa_heap *heap = _pa_thread_heap;
  pa_secure_free(pool, p);
  track_free(p, pool->block_size);
  if (__builtin_expect(pool->owner == heap, 1)) {
    heap->counts.frees[domain]++;
    pa_pool_free_local(heap, pool, p);
  } else {
    _pa_heap_free_remote(heap, pool->owner, p, domain);
  }
}

static inline void pa_free_fast(pa_domain domain, void *p) {
  uintptr_t limit = atomic_load_explicit(&_pa_fast.radix_root, memory_order_relaxed);
  if (__builtin_expect(pa_arena_lookup(p, limit) == NULL, 0)) {
    _pa_domain_free(p, domain);
    return;
  }
  pa_pool_free(pa_pool_of(p), p, domain);
}

/* ---- Free lists (src/freelist.c) ----------------------------------------- */

/* Frees every object the heap's bins keep (its thread is exiting, or calls
 * pa_collect). */
void _pa_freelists_flush(pa_heap *heap);
/* Adds one heap's bins to the totals (statistics walk, heaps lock held). */
void _pa_freelists_count_heap(struct pa_stats *s, const pa_heap *heap);
/* Live lists now. */
size_t _pa_freelists_live(void);
/* Fills out[0 .. max-1] with the live lists' statistics; returns how many
 * were filled. */
size_t _pa_freelists_gather(struct pa_freelist_stats *out, size_t max);
/* The debug hooks went on: lists keep nothing from now on. */
void _pa_freelists_debug_installed(void);

/* ---- Internal metadata (heap and arena records) -------------------------- */

void *_pa_meta_alloc(size_t size);
void _pa_meta_lock(void);
void _pa_meta_unlock(void);

/* ---- Statistics and snapshots (src/stats.c, src/snapshot.c) ------------- */

/* Statistics read counters their owners write without a lock: these reads
 * race by design. */
#define RACY_READS __attribute__((no_sanitize("thread")))

/* One pool as a snapshot keeps it. */
enum { SNAPSHOT_EMPTY, SNAPSHOT_USED, SNAPSHOT_FULL, SNAPSHOT_UNTOUCHED };
struct snapshot_pool {
  uint8_t state; /* SNAPSHOT_* */
  uint8_t size_class;
  uint32_t in_use;
  uint32_t heap; /* owning heap's id; 0 for empty and untouched pools */
};
/* Where a walk copies the pools: room arenas' worth; `arenas` says how many
 * were copied, `overflow` that more were held. */
struct pool_records {
  uintptr_t *bases;
  struct snapshot_pool *pools;
  size_t room, arenas;
  bool overflow;
};
/* One walk fills *s, for heaps 1..max per_heap[], and, if records is not
 * NULL, the pools; returns the number of heaps. */
size_t _pa_stats_collect(struct pa_stats *s, struct pa_heap_stats *per_heap, size_t max,
                     struct pool_records *records);
/* The JSON object of pa_stats_json, without a newline. */
void _pa_stats_json_write(FILE *out, const struct pa_stats *s, const struct pa_heap_stats *heaps,
                      size_t nheaps);

/* A heap snapshot in memory mapped from the OS: taken under the locks,
 * written (with stdio, which may malloc) after they are released. */
struct snapshot {
  size_t mapped; /* bytes of this record */
  uint64_t taken_ms;
  struct pa_stats stats;
  size_t nheaps;
  struct pa_heap_stats *heaps;
  struct pool_records records;
};
struct snapshot *_pa_snapshot_capture(void); /* NULL if out of memory */
void _pa_snapshot_write(FILE *out, const struct snapshot *snap);
void _pa_snapshot_release(struct snapshot *snap);

/* ---- Options (POOLALLOC_* environment variables) ------------------------- */

#define PA_OPTION_PATH_MAX 512
/* Arena decay: mimalloc's purge delay by default; at most an hour. */
#define PA_ARENA_DECAY_DEFAULT_MS 10
#define PA_ARENA_DECAY_MAX_MS 3600000
struct _pa_options {
  bool show_stats; /* POOLALLOC_SHOW_STATS: statistics at exit, to stderr or a file */
  bool verbose;    /* POOLALLOC_VERBOSE: options at start, OS failures */
  bool debug;      /* POOLALLOC_DEBUG: debug hooks on every domain */
  int trace;       /* POOLALLOC_TRACE=N: trace allocations, N frames each */
  int sample_ms;   /* POOLALLOC_SAMPLE=MS: sample every MS ms (src/sample.c) */
  /* POOLALLOC_ARENA_DECAY_MS: how long a wholly free arena waits before
   * it goes back to the OS (src/arena.c) */
  long arena_decay_ms;
  /* Paths, "" when unset; %p in them stands for the process id. */
  char sample_path[PA_OPTION_PATH_MAX];   /* POOLALLOC_SAMPLE_FILE */
  char snapshot_path[PA_OPTION_PATH_MAX]; /* POOLALLOC_SNAPSHOT */
};
extern struct _pa_options _pa_options;
void _pa_options_init(void);
/* pattern with %p replaced by the process id, into out; false if pattern
 * is empty or the result does not fit. */
bool _pa_options_expand_path(const char *pattern, char *out, size_t size);
/* A line to stderr with write(2): safe wherever malloc is not. */
void _pa_message(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* ---- OS ------------------------------------------------------------------ */

void *_pa_os_map(size_t size);
/* size bytes aligned to alignment, and `guard` bytes after them mapped
 * PROT_NONE (0 for none): unmapped with _pa_os_unmap(p, size + guard). */
void *_pa_os_map_aligned(size_t size, size_t alignment, size_t guard);
size_t _pa_os_page_size(void);
/* Fills buf with bytes from the kernel's random source; false if it cannot. */
bool _pa_os_random(void *buf, size_t size);
void _pa_os_unmap(void *p, size_t size);
/* Fault injection, so tests can prove that exhaustion is survived: maps
 * number `first` to `last` (counted from 1 since start-up, as _pa_os_maps
 * reports them) are refused; first 0 refuses none.  POOLALLOC_FAIL_MAPS
 * sets it at start-up.  _pa_os_fail_after(n): the next n maps succeed, every
 * later one fails; -1 ends it. */
void _pa_os_fail_maps(size_t first, size_t last);
void _pa_os_fail_after(long countdown);
/* Maps asked for since start-up (refused ones included), and those of them
 * refused on purpose. */
size_t _pa_os_maps(void);
size_t _pa_os_failures_injected(void);
bool _pa_os_is_mapped(const void *p, size_t size);
/* The calling thread's kernel id, which names heaps in statistics. */
int _pa_os_thread_id(void);
/* Resident set size of this process in bytes, 0 if unknown. */
size_t _pa_os_resident_bytes(void);
/* Milliseconds on a monotonic clock. */
uint64_t _pa_os_monotonic_ms(void);

#pragma GCC visibility pop
#endif
