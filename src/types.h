/*
 * poolalloc's types: the build-time geometry and every structure, shared by
 * the internal headers (src/internal.h: the functions each file offers,
 * lowest layer first; src/inline.h: the inline fast paths).  The picture
 * first (numbers are the defaults):
 *
 *   request path:  public API (api.c, override.c) ──> domain RAW / MEM / OBJ
 *     (domain.c: the default layer, or a chain on top of it: a user's
 *     pa_set_allocator, debug.c, trace.c) ──> general allocator (alloc.c)
 *     ──> thread heap (heap.c) ──> pool (pool.c) ──> arena (arena.c) ──> OS
 *
 *   OS ──mmap──> arena (256 KiB, aligned to 256 KiB) ──carved into──> 64 pools
 *
 *   arena  [pool 0][pool 1][pool 2] ... [pool 63]        4 KiB each
 *   pool   [block][block][block]...[waste]               one size class each
 *
 *   radix tree:  address >> ARENA_BITS ──> arena record (or NULL: not ours)
 *   arena record (metadata, away from the arena):
 *     base, free_pools bitmap, lists ... | pools[0] | pools[1] | ... | pools[63]
 *     pool i's record: class, free list, bump offset, owner, state
 *
 *   thread heap (one per thread)
 *     used[class] ──> pool <──> pool <──> pool      doubly linked, O(1) unhook
 *     remote      ──> one block for each pool other threads began freeing
 *                     into (atomic stack); the rest wait on the pool's own
 *
 *   arenas (shared, one lock)
 *     usable ──> arena <──> arena <──> arena   ascending by free pools
 *     all    ──> every arena held, doubly linked (the seeds' arena list)
 *     arena->free_pools                        empty pools, a bit each
 *
 * A pool is *used* (in its heap's class list: at least one block free),
 * *full* (in no list) or *empty* (its bit set in its arena's free_pools).
 * Full pools need no list: a free into one relinks it at the back of its
 * class list (src/pool.c says why the back).  The one exception to "count
 * == 0 means empty": a heap keeps a pool whose blocks are all free in its
 * class list while the list holds at most one other, so a malloc/free loop
 * of one size does not bounce the pool through the arena lock on every
 * call (CPython keeps one spare arena for the same reason).
 */
#ifndef POOLALLOC_TYPES_H
#define POOLALLOC_TYPES_H

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
/* Small classes: 1..PA_SMALL_REQUEST_THRESHOLD (512, poolalloc.h; CPython's
 * since 3.3) bytes, PA_ALIGNMENT apart, each served from pools or from
 * runs of pools that hold 256 blocks (src/pool.c). */
#define PA_SMALL_CLASSES (PA_SMALL_REQUEST_THRESHOLD / POOLALLOC_ALIGNMENT)

#define PA_POOL_SIZE ((size_t)POOLALLOC_POOL_SIZE)
#define PA_POOL_MASK (PA_POOL_SIZE - 1)
#define PA_POOL_BITS __builtin_ctzll(POOLALLOC_POOL_SIZE)
#define PA_ARENA_SIZE ((size_t)POOLALLOC_ARENA_SIZE)
#define PA_ARENA_BITS __builtin_ctzll(POOLALLOC_ARENA_SIZE)
#define PA_POOLS_PER_ARENA (POOLALLOC_ARENA_SIZE / POOLALLOC_POOL_SIZE)

/* Medium classes: above 512 bytes up to a quarter of an arena (64 KiB with
 * 256 KiB arenas, 256 KiB with 1 MiB ones), four per doubling (640, 768,
 * 896, 1024, 1280, ...: at most 25% apart, as jemalloc's and mimalloc's),
 * each served from *runs* of contiguous pools long enough to hold at least
 * two blocks (src/pool.c chooses the length).  A quarter of an arena, so a
 * run of two such blocks takes at most half of one.  Larger requests go
 * on to the layer below the pools. */
#define PA_LARGE_REQUEST_THRESHOLD (PA_ARENA_SIZE / 4)
#define PA_MEDIUM_CLASSES (4 * (PA_ARENA_BITS - 2 - 9))
#define PA_NUM_CLASSES (PA_SMALL_CLASSES + PA_MEDIUM_CLASSES)

_Static_assert(POOLALLOC_ALIGNMENT == 8 || POOLALLOC_ALIGNMENT == 16,
               "POOLALLOC_ALIGNMENT must be 8 or 16");
_Static_assert((POOLALLOC_POOL_SIZE & (POOLALLOC_POOL_SIZE - 1)) == 0 &&
                   POOLALLOC_POOL_SIZE >= 4096 && POOLALLOC_POOL_SIZE <= (1 << 20),
               "POOLALLOC_POOL_SIZE must be a power of two from 4 KiB to 1 MiB");
_Static_assert((POOLALLOC_ARENA_SIZE & (POOLALLOC_ARENA_SIZE - 1)) == 0 &&
                   POOLALLOC_ARENA_SIZE >= 2 * POOLALLOC_POOL_SIZE &&
                   POOLALLOC_ARENA_SIZE <= 64 * POOLALLOC_POOL_SIZE,
               "POOLALLOC_ARENA_SIZE must be a power of two of 2 to 64 pools");

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
/* One bit per block of a pool of the smallest class: no run holds more. */
#define PA_SECURE_BITMAP_WORDS (POOLALLOC_POOL_SIZE / POOLALLOC_ALIGNMENT / 64)

/* ---- Pools ---------------------------------------------------------------- */

typedef struct pa_block {
  struct pa_block *next; /* the link lives in the first word of a free block */
} pa_block;

typedef struct pa_heap pa_heap;

enum pa_pool_state {
  PA_POOL_EMPTY = 0,     /* free in its arena, served a class before */
  PA_POOL_USED = 1,      /* in its heap's class list */
  PA_POOL_FULL = 2,      /* in no list */
  PA_POOL_UNTOUCHED = 3, /* free in its arena, never carved */
  PA_POOL_RUN = 4,       /* a run's or a span's pool after its first: see pa_arena's serving */
  PA_POOL_LARGE = 5,     /* the first pool of a large span (src/large.c) */
};

/* The record of one pool, kept in its arena's record (struct pa_arena),
 * away from the blocks: nothing is written into a pool's pages but the
 * blocks and their free links, so a pool gives all its bytes to blocks,
 * its pages can be given back to the OS while its record stays, and a
 * stray write from a block never reaches a pool's bookkeeping.  The record
 * of the pool holding p is found from the arena (the radix tree) and the
 * pool's index in it, without reading p's page (mimalloc v3 and snmalloc
 * keep their metadata away from the blocks too).  64 bytes, a cache line
 * (more in secure builds). */
typedef struct pa_pool {
  pa_block *free;         /* blocks freed by the owner, reused first */
  struct pa_pool *next;   /* class list (used pools) */
  struct pa_pool *prev;
  pa_heap *owner;         /* the heap that allocates from this pool */
  char *start;            /* the pool's first byte: its first block */
  /* Blocks other threads freed into the pool, not yet taken in by the
   * owner (a stack pushed with CAS), with PA_REMOTE_ANNOUNCE in the low
   * bit: while it is set the list is empty, and the next such free sends
   * its block to the owner heap's `remote` list instead, which tells the
   * owner this pool has blocks waiting (src/heap.c). */
  _Atomic uintptr_t remote;
  uint32_t count;         /* blocks handed out, remote ones included */
  uint32_t nextoffset;    /* first never-used ("virgin") block: bump carving */
  uint32_t block_size;
  uint8_t size_class; /* PA_CLASS_NONE when never initialised */
  uint8_t state;      /* enum pa_pool_state */
  /* A run's first pool: its length in pools (its arena's `serving` says
   * where the others' first is). */
  uint8_t run_pools;
#if PA_SECURE
  /* UINT64_MAX / block_size + 1: "is offset a multiple of block_size" with
   * a multiply instead of a division (Lemire, Kaser, Kurz 2019) */
  uint64_t divisor;
  /* bit i set: block i of the pool or run is handed out (no pool or run
   * holds more blocks than a pool of the smallest class).  Atomic: other
   * threads' frees clear bits. */
  _Atomic uint64_t handed_out[PA_SECURE_BITMAP_WORDS];
  uint64_t canary; /* the secret ^ the record's address: a wild write shows */
#endif
} pa_pool;

_Static_assert(PA_POOLS_PER_ARENA * sizeof(pa_pool) <= UINT16_MAX, "record offsets must fit 16 bits");
_Static_assert(PA_SECURE || sizeof(pa_pool) == 64, "a pool's record is one cache line");
#define PA_REMOTE_ANNOUNCE ((uintptr_t)1)

#define PA_CLASS_NONE 0xff
_Static_assert(PA_NUM_CLASSES < PA_CLASS_NONE, "size class must fit a byte");
_Static_assert(PA_NUM_CLASSES <= PA_MAX_CLASSES, "poolalloc.h's PA_MAX_CLASSES is too small");

/* Secure builds: the faults, reported with the address and the pool's
 * block size, then abort (src/secure.c). */
enum pa_secure_fault {
  PA_FAULT_DOUBLE_FREE,   /* the block is not handed out */
  PA_FAULT_INVALID_FREE,  /* not the start of a block of its pool */
  PA_FAULT_BAD_HEADER,    /* the pool's record fails its checks */
  PA_FAULT_BAD_FREE_LIST, /* a free-list link leads outside its pool's free blocks */
};

/* ---- Thread heaps -------------------------------------------------------- */

/* The free lists' state for one thread lives in its heap record, in
 * slots whose contents only src/freelist.c knows: chunks of its bins, made
 * on first use and never freed. */
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

/* Empty pools and runs a heap keeps for its next fresh pool of a small
 * class or run of the same length, so a thread whose structures die and
 * are built again (a tree, a request) takes no arena lock for them: 256
 * KiB of pools, and at least the longest run. */
#define PA_HEAP_EMPTY_POOLS \
  (PA_POOL_SIZE * PA_POOLS_PER_ARENA / 2 > 256 * 1024 ? PA_POOLS_PER_ARENA / 2 : 256 * 1024 / PA_POOL_SIZE)

struct pa_heap {
  pa_pool *used[PA_NUM_CLASSES];      /* first used pool per class, or &_pa_empty_pool */
  pa_pool *used_tail[PA_NUM_CLASSES]; /* last used pool per class, or NULL */
  pa_pool *empty_pools;               /* kept empty pools and runs, linked by next */
  unsigned empty_kept;                /* their pools: at most PA_HEAP_EMPTY_POOLS */
  bool draining;                      /* other threads' frees being taken in */
  struct pa_heap_counts counts;
  /* src/freelist.c's chunks of bins, by bin number / chunk size
   * (statistics may read them at any time) */
  _Atomic(void *) freelist_chunks[PA_FREELIST_CHUNKS];
#if PA_SECURE
  uint64_t random; /* the state of its fresh pools' shuffles */
#endif
  /* What other threads write, on a cache line of its own: a free into
   * this heap's pools never touches the lines its owner writes. */
  /* the first block other threads freed into each of our pools since the
   * owner last took that pool's remote list in (see pa_pool's remote) */
  _Alignas(64) _Atomic(pa_block *) remote;
  atomic_bool abandoned; /* its thread exited; waits for adoption */
  _Alignas(64) pa_heap *next_all; /* every heap ever made (heaps are recycled) */
  pa_heap *next_abandoned;
  unsigned id;    /* 1, 2, ... in order of creation: names it in statistics */
  bool table;     /* a handle table's heap (src/handle.c), no thread's */
  bool exit_keyed; /* set under the thread-exit key (src/heap.c) */
  int thread;     /* kernel id of the thread using it; 0 while abandoned */
};

/* ---- Arenas -------------------------------------------------------------- */

/* An arena's record, from the metadata (src/meta.c), with the records of
 * its pools: pool i of the arena at `base` is pools[i]. */
typedef struct pa_arena {
  uintptr_t base;             /* PA_ARENA_SIZE aligned */
  uint64_t free_pools;        /* bit i: pool i is empty or never carved */
  unsigned nfreepools;        /* bits set in free_pools */
  unsigned longest_free;      /* the longest stretch of them: runs that fit */
  struct pa_arena *fit_next;  /* the arenas of the same longest_free */
  struct pa_arena *fit_prev;
  unsigned ntotalpools;
  struct pa_arena *next;      /* usable list, ascending nfreepools */
  struct pa_arena *prev;
  struct pa_arena *all_next;  /* every arena held */
  struct pa_arena *all_prev;
  void *mapping;              /* what the arena allocator returned: base, or */
  size_t mapping_size;        /* a region twice as large holding it */
  const pa_arena_allocator *source; /* the allocator that made it */
  uint64_t empty_since_ms;    /* when its last pool came back (wholly free) */
  size_t large_size;          /* a large span's (src/large.c): its block's usable bytes; 0 for an arena */
  /* Empty pools whose pages are still resident, and when the first of
   * them went empty: purged after the decay delay (src/arena.c). */
  uint64_t dirty_pools;
  uint64_t dirty_since_ms;
  struct pa_arena *dirty_next; /* the purge queue, oldest first */
  struct pa_arena *dirty_prev;
  /* For each pool, the byte offset in pools[] of the record that serves
   * it: its own, or its run's first pool's, which serves the whole run.
   * Here, two lines for the arena, not in each record: a free into a
   * run's later pool reads this table and the serving record, not that
   * pool's record too (a cache miss of its own under churn); and the
   * offset is ready to add, one load and one add. */
  _Alignas(64) uint16_t serving[PA_POOLS_PER_ARENA];
  _Alignas(64) pa_pool pools[PA_POOLS_PER_ARENA];
} pa_arena;

/* ---- Address -> arena ---------------------------------------------------- */

#define PA_ADDRESS_BITS 48
#define PA_RADIX_KEY_BITS (PA_ADDRESS_BITS - PA_ARENA_BITS)
#define PA_RADIX_LEAF_BITS (PA_RADIX_KEY_BITS / 2)
#define PA_RADIX_ROOT_BITS (PA_RADIX_KEY_BITS - PA_RADIX_LEAF_BITS)
#define PA_RADIX_ROOT_LEN ((size_t)1 << PA_RADIX_ROOT_BITS)
#define PA_RADIX_LEAF_LEN ((size_t)1 << PA_RADIX_LEAF_BITS)

typedef _Atomic(pa_arena *) pa_radix_leaf[PA_RADIX_LEAF_LEN];
#define PA_RADIX_NO_ROOT UINTPTR_MAX /* no first leaf yet */

/* One heap as the heap layer shows it to a walk (statistics). */
typedef struct pa_heap_view {
  unsigned id;    /* 1, 2, ... in order of creation */
  int thread;     /* kernel id of its thread; 0 while abandoned, and for tables */
  bool table;     /* a handle table's heap */
  bool abandoned; /* its thread exited */
  const struct pa_heap_counts *counts; /* read as its thread writes them */
} pa_heap_view;

/* One pool as the arena layer shows it to a walk (statistics, the heap
 * map), whatever the pool records look like inside.  Every pool of a run
 * shows the run's figures. */
typedef struct pa_pool_view {
  uint8_t state;      /* enum pa_pool_state but PA_POOL_RUN: the run's */
  uint8_t size_class; /* used and full pools */
  uint8_t run_pools;  /* the pools of its run (1 for a pool on its own) */
  uint8_t run_index;  /* its place in the run, 0 for the first */
  uint32_t in_use;    /* blocks handed out (of the whole run) */
  unsigned heap;      /* the owning heap's id; 0 for empty and untouched pools */
} pa_pool_view;

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

/* The malloc fast path compares against this limit instead of a constant,
 * which costs nothing (a compare with memory instead of an immediate).
 * While any allocator other than the default serves MEM or OBJ (a user's,
 * the debug hooks, tracing), and before the options are read, it is 0:
 * every call then fails its fast test and reaches _pa_entry_malloc
 * (src/api.c), which dispatches through the domain's allocator.  The free fast path has its
 * gate in the radix tree (_pa_radix_free_root, src/radix.c). */
struct pa_fast_limits {
  _Atomic size_t small_request; /* PA_SMALL_REQUEST_THRESHOLD, or 0 */
};

/* ---- Statistics and snapshots (src/stats.c, src/snapshot.c) ------------- */

/* Statistics read counters their owners write without a lock: these reads
 * race by design. */
#define RACY_READS __attribute__((no_sanitize("thread")))

/* One pool as a snapshot keeps it. */
enum { SNAPSHOT_EMPTY, SNAPSHOT_USED, SNAPSHOT_FULL, SNAPSHOT_UNTOUCHED };
struct snapshot_pool {
  uint8_t state; /* SNAPSHOT_* */
  uint8_t size_class;
  uint8_t run_pools, run_index;
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

/* ---- Options (POOLALLOC_* environment variables) ------------------------- */

#define PA_OPTION_PATH_MAX 512
/* Arena decay: mimalloc's purge delay by default; at most an hour. */
#define PA_ARENA_DECAY_DEFAULT_MS 10
#define PA_ARENA_DECAY_MAX_MS 3600000
/* Freed large spans kept for reuse (src/large.c), in MiB. */
#define PA_LARGE_CACHE_DEFAULT_MB 8
#define PA_LARGE_CACHE_MAX_MB 65536
struct _pa_options {
  bool show_stats; /* POOLALLOC_SHOW_STATS: statistics at exit, to stderr or a file */
  bool verbose;    /* POOLALLOC_VERBOSE: options at start, OS failures */
  bool debug;      /* POOLALLOC_DEBUG: debug hooks on every domain */
  int trace;       /* POOLALLOC_TRACE=N: trace allocations, N frames each */
  int sample_ms;   /* POOLALLOC_SAMPLE=MS: sample every MS ms (src/sample.c) */
  /* POOLALLOC_ARENA_DECAY_MS: how long a wholly free arena waits before
   * it goes back to the OS (src/arena.c) */
  long arena_decay_ms;
  long large_cache_mb; /* POOLALLOC_LARGE_CACHE_MB: freed large spans kept (src/large.c) */
  /* Paths, "" when unset; %p in them stands for the process id. */
  char sample_path[PA_OPTION_PATH_MAX];   /* POOLALLOC_SAMPLE_FILE */
  char snapshot_path[PA_OPTION_PATH_MAX]; /* POOLALLOC_SNAPSHOT */
};

#pragma GCC visibility pop
#endif
