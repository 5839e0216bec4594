/*
 * poolalloc: CPython's memory manager (arenas, pools, blocks) for any C
 * program, thread-safe.
 *
 * Requests of 1..512 bytes are served from pools of one size class each
 * (16 bytes apart, so every result is 16-byte aligned as malloc's must be;
 * the object domain keeps classes 8 bytes apart, see pa_obj_malloc);
 * requests up to a quarter of an arena (64 KiB by default) from runs of
 * pools in medium classes four per doubling; pools live in arenas mapped
 * from the OS.  Larger requests, and alignments past a pool, get a mapping
 * each.  No other allocator is involved but for the RAW domain, which is
 * the C library's malloc in the library build.
 * Every function may be called from any thread, and a block may be freed by
 * a thread other than the one that allocated it.
 *
 * Errors follow the C library: a NULL result sets errno to ENOMEM (memory
 * exhausted, or a size that overflows) or EINVAL (a bad alignment).
 */
#ifndef POOLALLOC_H
#define POOLALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define PA_API __attribute__((visibility("default")))
#define PA_MALLOC_LIKE __attribute__((malloc, warn_unused_result))
#define PA_LIKELY(x) __builtin_expect(!!(x), 1)
#else
#define PA_API
#define PA_MALLOC_LIKE
#define PA_LIKELY(x) (x)
#endif

/* Requests up to this many bytes are served from one pool per class;
 * larger ones up to a quarter of an arena (pa_stats's
 * large_request_threshold: 64 KiB by default) from runs of pools, and
 * larger still from mappings of their own. */
#define PA_SMALL_REQUEST_THRESHOLD 512
/* The most size classes any build has (small and medium). */
#define PA_MAX_CLASSES 128

/* Allocates size bytes, 16-byte aligned (alignof(max_align_t) on x86-64):
 * requests of 1..512 bytes take the smallest block of 16, 32, ..., 512
 * bytes that holds them, as every MEM and RAW function's results; larger
 * ones the smallest medium class (640, 768, 896, 1024, 1280, ...), and
 * past those a mapping of their own, rounded up to a page.
 * pa_malloc(0) returns a unique pointer that must be freed. */
PA_API PA_MALLOC_LIKE void *pa_malloc(size_t size);

/* Zeroed count * size bytes; NULL with ENOMEM if the product overflows. */
PA_API PA_MALLOC_LIKE void *pa_calloc(size_t count, size_t size);

/* realloc semantics as glibc has them: ptr NULL is pa_malloc(size); size 0
 * with a non-NULL ptr frees it and returns NULL.  A block stays in place when
 * the new size still fits its class and does not shrink below 3/4 of it;
 * a large block grows and shrinks in place where its mapping allows, else
 * the kernel moves its pages (mremap); data moves across the layers both
 * ways.  On failure NULL is returned (errno ENOMEM) and ptr is untouched. */
PA_API void *pa_realloc(void *ptr, size_t size);

/* Frees a block from any pa_ function, from any thread.  NULL is a no-op.
 * A pointer poolalloc did not hand out goes to the raw layer's free (the C
 * library's); under the override it is left alone. */
PA_API void pa_free(void *ptr);

/* The bytes usable at ptr (at least what was asked for; exactly that under
 * the debug hooks); 0 for NULL. */
PA_API size_t pa_usable_size(const void *ptr);

/* alignment must be a power of two (else NULL, EINVAL). */
PA_API PA_MALLOC_LIKE void *pa_aligned_alloc(size_t alignment, size_t size);

/* POSIX: alignment a power of two and a multiple of sizeof(void *), else
 * EINVAL is returned; ENOMEM on exhaustion.  errno is not changed. */
PA_API int pa_posix_memalign(void **out, size_t alignment, size_t size);

/* Gives back what can be given: the objects this thread keeps on free
 * lists (pa_freelist_clear), frees other threads sent to this thread's
 * pools, empty pools held by this thread and by exited threads, and the
 * wholly free arenas kept as a spare or waiting out their decay
 * (pa_arena_decay_ms).  Never needed for correctness. */
PA_API void pa_collect(void);

/* ---- Domains and pluggable allocators -------------------------------------
 *
 * As in CPython (PEP 445), memory is requested through three domains, each
 * served by a replaceable allocator:
 *
 *   PA_DOMAIN_RAW  pa_raw_*   large buffers, memory taken with no lock held;
 *                             by default the C library's malloc; when
 *                             poolalloc is the malloc, served as MEM is
 *   PA_DOMAIN_MEM  pa_mem_*   general purpose; pa_malloc and friends, and
 *                             malloc itself under the override library
 *   PA_DOMAIN_OBJ  pa_obj_*   objects
 *
 * MEM and OBJ are served by poolalloc's general allocator by default: up to
 * a quarter of an arena from the pools of the calling thread's heap, 0
 * bytes as 1, anything larger from a mapping of its own; the frees of
 * pointers poolalloc did not hand out go to the raw layer underneath the
 * domains: a RAW allocator set with pa_set_allocator sees pa_raw_* calls
 * only.  (Until 0.2 requests above 512 bytes went to the C library.)
 *
 * Every domain function is thread-safe.  Memory must be released through the
 * domain that allocated it; the debug hooks report "API mismatch" otherwise. */
typedef enum { PA_DOMAIN_RAW = 0, PA_DOMAIN_MEM = 1, PA_DOMAIN_OBJ = 2 } pa_domain;

PA_API PA_MALLOC_LIKE void *pa_raw_malloc(size_t size);
PA_API PA_MALLOC_LIKE void *pa_raw_calloc(size_t count, size_t size);
PA_API void *pa_raw_realloc(void *ptr, size_t size);
PA_API void pa_raw_free(void *ptr);
PA_API PA_MALLOC_LIKE void *pa_mem_malloc(size_t size);
PA_API PA_MALLOC_LIKE void *pa_mem_calloc(size_t count, size_t size);
PA_API void *pa_mem_realloc(void *ptr, size_t size);
PA_API void pa_mem_free(void *ptr);
/* The object domain keeps the seeds' classes, 8 bytes apart (8, 16, 24, 32,
 * 40, ...): a block whose class is not a multiple of 16 is only 8-byte
 * aligned.  For callers who know their objects need no more than 8 (no
 * long double, no SSE vectors, no _Alignas(16)); pa_mem_malloc otherwise. */
PA_API PA_MALLOC_LIKE void *pa_obj_malloc(size_t size);
PA_API PA_MALLOC_LIKE void *pa_obj_calloc(size_t count, size_t size);
PA_API void *pa_obj_realloc(void *ptr, size_t size);
PA_API void pa_obj_free(void *ptr);

/* An allocator for one domain, as CPython's PyMemAllocatorEx.  Every
 * function must be thread-safe; malloc(ctx, 0) must return a unique pointer. */
typedef struct pa_allocator {
  void *ctx; /* passed back as the first argument */
  void *(*malloc)(void *ctx, size_t size);
  void *(*calloc)(void *ctx, size_t count, size_t size);
  void *(*realloc)(void *ctx, void *ptr, size_t size);
  void (*free)(void *ctx, void *ptr);
} pa_allocator;

/* Copies the domain's current allocator into *out.  Returns 0, or -1 with
 * errno EINVAL for an unknown domain. */
PA_API int pa_get_allocator(pa_domain domain, pa_allocator *out);

/* Makes *allocator serve the domain from now on (the struct is copied).  The
 * supported use is wrapping: get the current allocator, set one that does its
 * own work and calls the previous one, as a counter, a tracer or a fault
 * injector does.  Setting an allocator obtained from pa_get_allocator earlier
 * puts it back (and removes the wrappers set since).  A replacement that does
 * not call the previous allocator must be set before the first allocation.
 * pa_aligned_alloc, pa_posix_memalign and pa_usable_size have no slot in the
 * struct: they call the allocator that was current when *allocator was set.
 * Returns 0, or -1 with errno EINVAL (unknown domain, a NULL function). */
PA_API int pa_set_allocator(pa_domain domain, const pa_allocator *allocator);

/* Where arenas come from (mmap by default), as PyObjectArenaAllocator.
 * alloc(ctx, size) returns size bytes (NULL on failure; any alignment: an
 * arena that is not aligned to its size is taken again at twice the size and
 * the aligned part used), free(ctx, ptr, size) gives back what alloc gave.
 * Each arena is released through the allocator that made it.  Both are
 * called with poolalloc's arena lock held: they must not allocate from the
 * MEM or OBJ domains. */
typedef struct pa_arena_allocator {
  void *ctx;
  void *(*alloc)(void *ctx, size_t size);
  void (*free)(void *ctx, void *ptr, size_t size);
} pa_arena_allocator;

PA_API void pa_get_arena_allocator(pa_arena_allocator *out);
/* Returns 0, or -1 with errno EINVAL if a function is NULL. */
PA_API int pa_set_arena_allocator(const pa_arena_allocator *allocator);

/* Arena decay: an arena whose last pool is freed is kept this many
 * milliseconds before it goes back to the OS (at the next pool taken from
 * or returned to any arena, or the next allocation that misses its pools),
 * so a structure that dies whole and is built again reuses warm memory.
 * The newest wholly free arena is kept beyond it as a spare; pa_collect()
 * releases them all at once.  At most max(8 MiB, the arenas holding live
 * blocks) wait: those beyond go as soon as they empty, so a program that
 * frees most of its memory and goes idle gets it back with no call, no
 * timer and no helper thread.  The default is
 * 10, or POOLALLOC_ARENA_DECAY_MS; 0 releases at once.  Sets the delay
 * (it applies from the next arena event) and returns the previous one;
 * ms < 0 (or above an hour) only returns it, with errno EINVAL if ms is
 * not -1. */
PA_API long pa_arena_decay_ms(long ms);

/* ---- Free lists: object-specific allocators -------------------------------
 *
 * CPython keeps freed floats, lists, dicts and tuples (one list per length)
 * on free lists of their own and hands them out again without going through
 * the allocator.  A pa_freelist does the same for any object type: a freed
 * object is kept for the next allocation of its size, up to a bound, and
 * what is not kept goes back to the domain it came from.
 *
 * A list serves one size, or a family of sizes indexed by a small integer
 * (index i holds objects of size + i * step bytes, as tuples by length).
 * Each thread keeps its own objects, with no lock; they go back to the pools
 * when the thread exits, at pa_freelist_clear, and at pa_collect.  An object
 * may be freed by any thread: it joins that thread's list.  Its first word
 * is overwritten while it is kept; an allocation returns it as the last user
 * left it otherwise.  Under the debug hooks lists keep nothing, so the hooks
 * see every free. */
typedef struct pa_freelist pa_freelist;

/* Indices (sizes) over all live lists together. */
#define PA_FREELIST_MAX_SIZES 1024
/* Bytes of a list's name kept, with the terminating NUL. */
#define PA_FREELIST_NAME_MAX 32

struct pa_freelist_config {
  const char *name;  /* shown in statistics; NULL for "freelist" */
  size_t size;       /* bytes of an index-0 object: at least sizeof(void *) */
  size_t step;       /* bytes added per index */
  unsigned sizes;    /* indices 0 .. sizes-1: at least 1 */
  unsigned max_kept; /* objects each thread keeps per index (0: none) */
  pa_domain domain;  /* PA_DOMAIN_OBJ or PA_DOMAIN_MEM: serves misses and
                        takes what is not kept */
};

/* A new list, or NULL with errno EINVAL (a bad config) or ENOMEM (more than
 * PA_FREELIST_MAX_SIZES indices would be live). */
PA_API pa_freelist *pa_freelist_create(const struct pa_freelist_config *config);

/* Gives every thread's kept objects back to the domain and retires the
 * list.  No thread may use the list during or after the call: calls on it
 * fail with EINVAL until a new list takes its place.  NULL is a no-op, and
 * a pointer that is no live list is reported and left alone. */
PA_API void pa_freelist_destroy(pa_freelist *list);

/* An object of the index's size: a kept one if the calling thread has one
 * (a hit), else a new one from the domain (a miss).  NULL with errno EINVAL
 * for an index out of range or a destroyed list, ENOMEM on exhaustion. */
PA_API PA_MALLOC_LIKE void *pa_freelist_alloc(pa_freelist *list, unsigned index);

/* Keeps obj (allocated with this index, by this list or by the list's
 * domain) for the calling thread, or frees it through the domain when the
 * thread keeps max_kept of this index already (an overflow).  NULL is a
 * no-op.  An index out of range is reported on stderr and obj is freed
 * through the domain (in debug mode the report ends in abort). */
PA_API void pa_freelist_free(pa_freelist *list, unsigned index, void *obj);

/* Gives the calling thread's kept objects of this list back to the domain,
 * as CPython empties its free lists at a full collection; returns how many.
 * pa_collect does it for every list. */
PA_API size_t pa_freelist_clear(pa_freelist *list);

struct pa_freelist_stats {
  const char *name; /* the list's: valid while the list lives */
  pa_domain domain;
  size_t size, step;
  unsigned sizes, max_kept;
  /* since the list was made, over every thread; for one index or all */
  size_t hits;       /* allocations served from kept objects */
  size_t misses;     /* allocations passed on to the domain */
  size_t overflows;  /* frees passed on to the domain: nothing more kept */
  size_t kept;       /* objects kept now (the pools count them in use) */
  size_t bytes_kept; /* their bytes at the index's size */
};

/* Fills *out for one index, or for all with index -1.  Returns 0, or -1
 * with errno EINVAL (a destroyed list, an index out of range). */
PA_API int pa_freelist_stats(const pa_freelist *list, int index, struct pa_freelist_stats *out);

/* ---- Handles: objects that can move -------------------------------------
 *
 * An object reached through a handle can be moved by the allocator: the
 * handle names a slot of a table, the slot holds the object's address, and
 * the cost is that one indirection.  pa_compact moves a table's objects out
 * of sparsely used pools into fuller ones and gives the emptied pools, and
 * arenas, back: the fragmentation plain pointers leave behind (a heap
 * after most of its objects died) is undone.
 *
 * A table has a heap of its own, so its pools hold its objects only and can
 * be emptied.  Objects of 1..512 bytes live there and can move; larger ones
 * come from the calling thread's pools or mappings and stay put.  Handle objects come straight from
 * the table's pools: the domains' layers (debug hooks, tracing) do not see
 * them.
 *
 * A table is used by one thread at a time (as an interpreter's heap under
 * its lock); different tables may be used by different threads at once.
 * An object's address, from pa_handle_get, is valid until the next
 * pa_compact of its table or the handle's free; from pa_handle_pin, until
 * the matching pa_handle_unpin (pinned objects never move).
 *
 * A handle carries its slot's generation, which the slot's free changes: a
 * freed, forged or other table's handle is reported on stderr and gives
 * NULL with errno EINVAL, never a wild pointer (in debug mode the report
 * ends in abort).  A slot is reused after 2^32 frees at the earliest. */
typedef unsigned long long pa_handle; /* 0 is never a handle */
typedef struct pa_handles pa_handles;

/* The start of every table, read by the inline pa_handle_get. */
struct pa_handle_slot {
  void *object;        /* NULL while the slot is free */
  unsigned generation; /* changes when the object is freed */
  unsigned word;       /* private */
};
struct pa_handles_header {
  struct pa_handle_slot *slots;
  unsigned nslots;
};

/* A new empty table, or NULL with errno ENOMEM. */
PA_API pa_handles *pa_handles_create(void);
/* Frees every object of the table and the table.  NULL is a no-op. */
PA_API void pa_handles_destroy(pa_handles *table);

/* A handle to a new object of size bytes (contents unspecified, 16-byte
 * aligned as pa_malloc's), or 0 with errno ENOMEM. */
PA_API pa_handle pa_handle_alloc(pa_handles *table, size_t size);
/* Frees the object.  0 is a no-op; a pinned object is reported and kept. */
PA_API void pa_handle_free(pa_handles *table, pa_handle handle);

/* The report and the NULL for a handle pa_handle_get refused. */
PA_API void *pa_handle_invalid(pa_handles *table, pa_handle handle);

/* The object's address now: one indirection, inline. */
static inline void *pa_handle_get(pa_handles *table, pa_handle handle) {
  const struct pa_handles_header *header = (const struct pa_handles_header *)table;
  unsigned index = (unsigned)handle - 1;
  if (PA_LIKELY(index < header->nslots)) {
    const struct pa_handle_slot *slot = &header->slots[index];
    if (PA_LIKELY(slot->generation == (unsigned)(handle >> 32) && slot->object != NULL))
      return slot->object;
  }
  return pa_handle_invalid(table, handle);
}

/* As pa_handle_get, and the object stays where it is until unpinned (pins
 * nest). */
PA_API void *pa_handle_pin(pa_handles *table, pa_handle handle);
/* Returns 0, or -1 with errno EINVAL (a bad handle, or one not pinned). */
PA_API int pa_handle_unpin(pa_handles *table, pa_handle handle);

struct pa_compact_stats {
  size_t handles;         /* live handles */
  size_t objects_moved, bytes_moved;
  size_t objects_pinned;  /* pinned objects, which stayed */
  size_t pools_before, pools_after; /* pools holding the table's objects */
  size_t pools_released;  /* emptied and given back to the arenas */
  size_t arenas_released; /* arenas the OS got back during the call (from
                             any heap: the arenas are shared) */
};

/* Moves the table's unpinned pool objects out of its sparsest pools of each
 * size class into its fullest, as far as that empties pools, and gives the
 * emptied pools and wholly free arenas back.  Returns the bytes of the pools
 * released; fills *out when it is not NULL.  Addresses from pa_handle_get
 * are stale afterwards.  When the memory for its own work cannot be mapped,
 * nothing moves and errno is ENOMEM (empty pools are still given back). */
PA_API size_t pa_compact(pa_handles *table, struct pa_compact_stats *out);

/* ---- Debug hooks -----------------------------------------------------------
 *
 * A layer on top of every domain that surrounds each block with bytes it
 * checks (CPython's PYTHONMALLOC=debug).  Enabled by POOLALLOC_DEBUG=1 in the
 * environment, or by pa_setup_debug_hooks() before the first allocation.
 *
 *   [16 bytes left to the layer below][requested size 8][serial 8]
 *   [offset 4][domain 1][leading guard 11 x 0xFD] data [trailing guard 0xFD,
 *   8..23 bytes, to a multiple of 16]
 *
 * Data is 16-byte aligned and filled with 0xCD (PA_DEBUG_CLEAN_BYTE) unless
 * calloc zeroed it; a freed block is filled with 0xDD (PA_DEBUG_DEAD_BYTE).
 * Each of these is reported on stderr, then the process aborts:
 *   "buffer overflow"   a trailing guard byte changed (found at free/realloc)
 *   "buffer underflow"  a leading guard byte changed
 *   "double free"       the block was freed already
 *   "invalid free"      not a pointer the allocators returned
 *   "API mismatch"      released through another domain than it came from
 *   "use after free"    a freed block was written to (found when its pool
 *                       block is handed out again)
 * The report gives the address, the requested size, the serial number, the
 * bytes around the guards in hex and, with tracing on, where the block was
 * allocated.  Costs: 64+ bytes and a fill per block, every call on the slow
 * path. */
#define PA_DEBUG_CLEAN_BYTE 0xCD
#define PA_DEBUG_DEAD_BYTE 0xDD
#define PA_DEBUG_FORBIDDEN_BYTE 0xFD

/* Returns 0 (also when the hooks are on already), or -1 with errno EBUSY if
 * memory was allocated before: those blocks have no guards to check. */
PA_API int pa_setup_debug_hooks(void);

/* ---- Tracing (what tracemalloc does for CPython) ---------------------------
 *
 * While tracing, every live block is recorded with the innermost `frames`
 * return addresses of the call stack that allocated it (POOLALLOC_TRACE=N in
 * the environment starts it with N frames at start-up).  Snapshots group the
 * live blocks by that traceback (with frames = 1: by allocation site).
 * Symbol names come from dladdr(): functions of shared libraries, and of the
 * executable when it is linked with -rdynamic; other frames print as
 * file+offset, which addr2line resolves. */
#define PA_TRACE_MAX_FRAMES 64

/* Starts (or restarts with a new depth, dropping what was traced) tracing.
 * Returns 0, or -1 with errno EINVAL (frames outside 1..PA_TRACE_MAX_FRAMES)
 * or ENOMEM. */
PA_API int pa_trace_start(int frames);
/* Stops tracing and forgets every trace. */
PA_API void pa_trace_stop(void);
/* The frames per traceback while tracing, else 0. */
PA_API int pa_trace_frames(void);
/* Bytes requested by the live traced blocks, now and at most since the
 * start (0 when not tracing). */
PA_API void pa_trace_get_traced_memory(size_t *current, size_t *peak);

/* One group of live blocks that share a traceback. */
struct pa_trace_site {
  size_t count;       /* live blocks */
  size_t bytes;       /* bytes requested by them */
  int frames;         /* valid entries of frame[] */
  void *frame[PA_TRACE_MAX_FRAMES]; /* innermost first */
};

typedef struct pa_snapshot pa_snapshot;

/* The live traced blocks now, grouped by traceback, largest bytes first;
 * NULL with ENOMEM (or EINVAL when not tracing).  Free with
 * pa_snapshot_free. */
PA_API pa_snapshot *pa_trace_snapshot(void);
PA_API void pa_snapshot_free(pa_snapshot *snapshot);
PA_API size_t pa_snapshot_sites(const pa_snapshot *snapshot);
/* The i-th site (by bytes, descending); NULL past the end. */
PA_API const struct pa_trace_site *pa_snapshot_site(const pa_snapshot *snapshot,
                                                           size_t i);
/* Totals of the snapshot: blocks and bytes. */
PA_API void pa_snapshot_totals(const pa_snapshot *snapshot, size_t *count,
                                     size_t *bytes);
/* Prints the top `limit` sites by bytes and the top `limit` by count, each
 * with its traceback and symbol names. */
PA_API void pa_snapshot_print(const pa_snapshot *snapshot, FILE *out, size_t limit);
/* Prints what changed from `older` to `newer`: the `limit` sites whose bytes
 * changed most (grown first), with the differences in bytes and blocks. */
PA_API void pa_snapshot_compare(const pa_snapshot *newer,
                                      const pa_snapshot *older, FILE *out, size_t limit);
/* Writes "0xADDR symbol+0xOFF (object)" for one frame into buf. */
PA_API void pa_trace_format_frame(void *frame, char *buf, size_t size);

/* ---- Statistics ----------------------------------------------------------
 *
 * Figures are exact when no other thread allocates while they are taken,
 * and each figure is a consistent reading otherwise.  docs/stats.md explains
 * every field and the JSON schema of pa_stats_json and pa_heap_snapshot. */

struct pa_class_stats {
  size_t block_size;
  size_t pools;            /* pools of this class, used and full */
  size_t blocks_in_use;    /* includes blocks other threads freed that the
                              owner has not taken back yet */
  size_t blocks_available; /* free blocks in those pools, carved or not */
};

/* Traffic through one domain, in blocks, since start-up. */
struct pa_domain_stats {
  size_t small_allocations; /* blocks the pools handed out for it */
  size_t small_frees;       /* its blocks given back to the pools */
  size_t large_allocations; /* MEM, OBJ: large blocks; RAW: blocks the raw
                               layer handed out */
  size_t large_frees;       /* the frees of those */
};

struct pa_stats {
  /* geometry of this build */
  size_t alignment, size_classes, small_request_threshold, large_request_threshold,
      pool_size, arena_size,
      pool_record_size; /* a pool's record, kept in its arena's, outside the pool */
  struct pa_class_stats classes[PA_MAX_CLASSES];
  /* arenas */
  size_t arenas_allocated_total; /* ever mapped */
  size_t arenas_released;        /* given back to the OS */
  size_t arenas_highwater;       /* most held at once */
  size_t arenas_current;         /* held now */
  /* pools in the arenas held now */
  size_t pools_used, pools_full, pools_empty, pools_untouched;
  /* bytes: these four add up to arenas_current * arena_size */
  size_t bytes_in_use;          /* in handed-out blocks (their class size) */
  size_t bytes_available;       /* in free blocks of used and full pools */
  size_t bytes_empty_pools;     /* in empty and never-touched pools */
  size_t bytes_quantization;    /* tail of each pool too small for a block */
  size_t bytes_metadata;        /* poolalloc's own records (arenas' with their
                                   pools', heaps'), mapped apart from the arenas */
  /* Part of bytes_in_use: what rounding requests up to their size class
   * added, over the rounding_blocks blocks whose requested size is known.
   * The pools do not keep it; tracing does (pa_trace_start,
   * POOLALLOC_TRACE), so both are 0 unless tracing is on (and the debug
   * hooks, whose guards share the blocks, are off). */
  size_t bytes_rounding, rounding_blocks;
  /* traffic: blocks the pools handed out and took back, ever (the sums of
   * the domains' small_allocations and small_frees) */
  size_t small_allocations, small_frees;
  /* traffic through each domain, indexed by pa_domain */
  struct pa_domain_stats domains[3];
  /* free lists, summed over the live lists (pa_freelist_stats) */
  struct {
    size_t lists, hits, misses, overflows, kept, bytes_kept;
  } freelists;
  /* raw layer (the RAW domain's default in the library build): calls, and
   * bytes as the C library sized them.  Each
   * thread counts its own traffic and these are the sums, exact when read;
   * the peak is followed as threads' net bytes move by 1 MiB, so it may
   * miss a peak by up to 1 MiB per thread (never below what is in use). */
  size_t raw_allocations, raw_frees, raw_bytes_in_use, raw_bytes_peak;
  /* large blocks (above large_request_threshold, or aligned past a pool),
   * a mapping each: live ones, their usable and mapped bytes, freed spans
   * kept for reuse, mappings made and requests the kept ones served */
  size_t large_blocks, large_bytes_in_use, large_bytes_mapped, large_bytes_cached, large_maps,
      large_cache_hits;
  /* thread heaps */
  size_t heaps, heaps_abandoned;
  size_t radix_leaves;
};

/* Fills *out; returns 0. */
PA_API int pa_stats_get(struct pa_stats *out);

/* One thread heap: the pools it owns and what its thread did. */
struct pa_heap_stats {
  unsigned id;      /* 1, 2, ... in order of creation */
  int thread;       /* kernel thread id (gettid) of its thread; 0 when the
                       thread exited and the heap waits for adoption, and
                       for a handle table's heap */
  int handles;      /* 1: the heap of a handle table (pa_handles_create) */
  size_t pools_used, pools_full;
  size_t bytes_in_use, bytes_available, bytes_quantization;
  /* blocks its thread took from the pools and freed (into any heap's pool) */
  size_t small_allocations, small_frees;
  struct pa_class_stats classes[PA_MAX_CLASSES];
};

/* Fills out[0 .. max-1] with heaps 1..max (out[i] is heap i + 1) and returns
 * how many heaps there are, which may be more than max. */
PA_API size_t pa_stats_heaps(struct pa_heap_stats *out, size_t max);

/* Prints the statistics as sys._debugmallocstats() does for CPython, then
 * each thread heap and the traffic through each domain. */
PA_API void pa_stats_print(FILE *out);

/* Writes the statistics and the thread heaps as one JSON object (schema in
 * docs/stats.md).  Returns 0, or -1 with errno set if writing failed. */
PA_API int pa_stats_json(FILE *out);

/* Writes every arena held with every pool in it (state, size class, blocks
 * in use and capacity, owning heap), with the statistics, as JSON (schema
 * in docs/stats.md); the input of the heap map (`poolalloc run --map`).
 * Returns 0, or -1 with errno set (ENOMEM, or a write error). */
PA_API int pa_heap_snapshot(FILE *out);

/* ---- Automatic memory: reference counts and a cycle collector ----------- */

/* CPython's automatic side for C programs (src/gc.c).  Objects live in the
 * pools (the OBJ domain) behind a hidden 32-byte header holding their
 * reference count and collector links; their bytes are 16-byte aligned
 * (header and object are rounded up to a multiple of 16 together) and
 * zeroed.  An object is freed the moment its count reaches zero; a
 * generational collector finds the cycles counting cannot, with CPython's
 * algorithm: copy each tracked object's count, subtract the references
 * tracked objects hold to each other (found by the type's traverse), keep
 * what is reachable from objects that still have outside references, and
 * clear and free the rest.
 *
 * A runtime is used by one thread at a time (as CPython's is under its
 * lock); several may live in one process, up to PA_GC_MAX_RUNTIMES at once.
 * Misuse is reported on stderr (and aborts under POOLALLOC_DEBUG): a decref
 * below zero, a freed object passed to incref or decref, traverse naming a
 * pointer that is not a live object of the runtime. */
typedef struct pa_gc_runtime pa_gc_runtime;
#define PA_GC_GENERATIONS 3
#define PA_GC_MAX_RUNTIMES 65535

/* traverse calls visit(referent, arg) for every object it references
 * (NULL referents are skipped for it). */
typedef void (*pa_gc_visit)(void *referent, void *arg);

/* A type, as CPython's type objects describe one; it must outlive its
 * objects and not change (pa_gc_new checks a type only when it is not the
 * one the runtime's last object was made of).  traverse NULL: the objects
 * hold no references and are not tracked by the collector (CPython's
 * atoms: strings, numbers).
 * clear(obj) drops every reference obj holds (pa_decref each, then set the
 * field to NULL: it may be called twice); it is called when the object is
 * freed and to break cycles.  finalize(obj), optional, runs once per
 * object, before the first clear, even if the object is resurrected (PEP
 * 442); a finalizer may store obj somewhere (pa_incref), which keeps it
 * alive. */
typedef struct pa_gc_type {
  const char *name;
  size_t size; /* bytes of an object, header not included */
  void (*traverse)(void *obj, pa_gc_visit visit, void *arg);
  void (*clear)(void *obj);
  void (*finalize)(void *obj);
} pa_gc_type;

/* Thresholds as CPython's gc.set_threshold: a collection of generation 0
 * when allocations minus frees of tracked objects exceed thresholds[0];
 * generation i + 1 is collected instead once generation i has been
 * collected thresholds[i + 1] times.  0 everywhere: 700, 10, 10.  A
 * collection that frees fewer than one in 64 of the objects it examines
 * doubles its generation's threshold (up to 64 times this one); one that
 * frees more restores it. */
struct pa_gc_config {
  unsigned thresholds[PA_GC_GENERATIONS];
};

/* NULL with errno EINVAL (a threshold of 0 with others set), ENOMEM, or
 * EAGAIN (PA_GC_MAX_RUNTIMES live). */
PA_API pa_gc_runtime *pa_gc_runtime_create(const struct pa_gc_config *config);
/* Frees every object the runtime still has, with no finalizer run; a
 * pointer the program still holds dangles afterwards. */
PA_API void pa_gc_runtime_destroy(pa_gc_runtime *rt);

/* A new object of the type, zeroed, with a count of 1, tracked (if the type
 * has traverse) in the youngest generation; NULL with ENOMEM.  May run a
 * collection first.  _var: extra bytes after type->size. */
PA_API void *pa_gc_new(pa_gc_runtime *rt, const pa_gc_type *type);
PA_API void *pa_gc_new_var(pa_gc_runtime *rt, const pa_gc_type *type, size_t extra);

/* The last 8 bytes of an object's hidden header, which the inline
 * pa_incref and pa_decref below use (CPython's Py_INCREF and Py_DECREF are
 * inline for the same reason: a call would cost more than the count);
 * the rest of the header is private. */
struct pa_gc_object_state {
  uint32_t refcount;
  uint16_t runtime;
  uint8_t generation;
  uint8_t flags; /* high nibble PA_GC_ALIVE while the object lives */
};
#define PA_GC_ALIVE 0xa0
#define PA_GC_ALIVE_MASK 0xf0

/* Called by pa_decref when a count reaches zero: finalizes and frees (an
 * object still counted, or freed, is reported and left alone). */
PA_API void pa_gc_dealloc(void *obj);
/* Called by pa_incref and pa_decref on misuse (a freed object, a count
 * below zero or past UINT32_MAX): reports, and aborts under
 * POOLALLOC_DEBUG; the count is left as it was. */
PA_API void pa_gc_misuse(void *obj, const char *caller);

#if defined(__GNUC__)
#define PA_LIKELY(x) __builtin_expect(!!(x), 1)
#else
#define PA_LIKELY(x) (x)
#endif

/* Count a reference more, or one less (freeing the object at zero); NULL
 * is a no-op for both. */
static inline void pa_incref(void *obj) {
  if (obj == NULL) return;
  struct pa_gc_object_state *state = (struct pa_gc_object_state *)obj - 1;
  if (PA_LIKELY((state->flags & PA_GC_ALIVE_MASK) == PA_GC_ALIVE && state->refcount != UINT32_MAX))
    state->refcount++;
  else
    pa_gc_misuse(obj, "pa_incref");
}

static inline void pa_decref(void *obj) {
  if (obj == NULL) return;
  struct pa_gc_object_state *state = (struct pa_gc_object_state *)obj - 1;
  if (PA_LIKELY((state->flags & PA_GC_ALIVE_MASK) == PA_GC_ALIVE && state->refcount != 0)) {
    if (--state->refcount == 0) pa_gc_dealloc(obj);
  } else {
    pa_gc_misuse(obj, "pa_decref");
  }
}

PA_API size_t pa_refcount(const void *obj);
PA_API const pa_gc_type *pa_gc_type_of(const void *obj);

/* Collects generations 0..gen (gen -1 or 2: all); returns the objects it
 * freed as garbage.  Runs even while automatic collection is disabled. */
PA_API size_t pa_gc_collect(pa_gc_runtime *rt, int gen);
/* CPython's gc.set_threshold: new thresholds (NULL or all 0: 700, 10,
 * 10), in force from the next allocation, without the backoff earlier
 * collections built up; -1 with errno EINVAL (a NULL runtime, a threshold
 * of 0 with others set), the runtime unchanged. */
PA_API int pa_gc_config_set(pa_gc_runtime *rt, const struct pa_gc_config *config);
/* gc.get_threshold: the thresholds configured (not doubled by backoff). */
PA_API void pa_gc_config_get(const pa_gc_runtime *rt, struct pa_gc_config *out);
/* gc.get_count: generation 0's allocations minus frees of tracked objects
 * since its last collection; generations 1 and 2's collections of the
 * generation below since their own last one. */
PA_API void pa_gc_counts(const pa_gc_runtime *rt, size_t counts[PA_GC_GENERATIONS]);
/* CPython's gc.callbacks: a function called at the start of every
 * collection (automatic or pa_gc_collect) and at its end, with what the
 * collection found and how long it took (the callbacks' own time not
 * included), for a program that logs or measures its pauses.  One per
 * runtime; pa_gc_callback_set replaces it, NULL removes it.  A callback
 * may make and drop objects and read the runtime; no collection starts
 * from it (pa_gc_collect returns 0), and it must not destroy the
 * runtime. */
enum pa_gc_phase { PA_GC_PHASE_START, PA_GC_PHASE_STOP };
struct pa_gc_event {
  enum pa_gc_phase phase;
  int generation;       /* the oldest generation collected */
  size_t collected;     /* PA_GC_PHASE_STOP: objects freed as garbage */
  size_t resurrected;   /* PA_GC_PHASE_STOP: kept alive by their finalizers */
  uint64_t nanoseconds; /* PA_GC_PHASE_STOP: the collection's time */
};
typedef void (*pa_gc_callback)(pa_gc_runtime *rt, const struct pa_gc_event *event, void *arg);
PA_API void pa_gc_callback_set(pa_gc_runtime *rt, pa_gc_callback callback, void *arg);
/* Automatic collection (on by default); _disable returns the old state. */
PA_API void pa_gc_enable(pa_gc_runtime *rt);
PA_API int pa_gc_disable(pa_gc_runtime *rt);
PA_API int pa_gc_is_enabled(const pa_gc_runtime *rt);

/* CPython's gc.freeze: every tracked object moves to a permanent
 * generation that no collection examines, and the generations' counts
 * (pa_gc_config) start again.  For data a program loads once and keeps (collections stop
 * walking it; after a fork they stop writing to its pages, which the
 * processes then keep sharing).  A frozen object is still freed when its
 * count reaches zero; a cycle among frozen objects stays until
 * pa_gc_unfreeze.  Returns how many moved; 0, doing nothing, when called
 * during a collection (from a finalizer or a clear). */
PA_API size_t pa_gc_freeze(pa_gc_runtime *rt);
/* gc.unfreeze: the frozen objects join the oldest generation; returns how
 * many (0, doing nothing, during a collection). */
PA_API size_t pa_gc_unfreeze(pa_gc_runtime *rt);
/* gc.get_freeze_count: how many objects are frozen now. */
PA_API size_t pa_gc_freeze_count(const pa_gc_runtime *rt);

struct pa_gc_generation_stats {
  size_t collections;  /* of this generation (younger ones included in it) */
  size_t examined;     /* objects looked at by those collections */
  size_t collected;    /* found unreachable and freed */
  size_t resurrected;  /* found unreachable, kept alive by a finalizer */
  uint64_t nanoseconds; /* spent in those collections */
};
struct pa_gc_stats {
  struct pa_gc_generation_stats generations[PA_GC_GENERATIONS];
  size_t objects;         /* alive now */
  size_t tracked;         /* of them, in the collector's generations or frozen */
  size_t generation_sizes[PA_GC_GENERATIONS];
  size_t created, freed_by_refcount, freed_by_collector;
  size_t finalized;       /* finalizers run */
};
PA_API void pa_gc_stats_get(const pa_gc_runtime *rt, struct pa_gc_stats *out);

/* The objects the last collection found unreachable whose finalizers made
 * them reachable again (resurrected), as CPython's gc.garbage lists what it
 * could not free: fills out[0 .. max-1] and returns how many there are.
 * The runtime holds a reference to each until the next collection or
 * pa_gc_resurrected_clear. */
PA_API size_t pa_gc_resurrected(const pa_gc_runtime *rt, void **out, size_t max);
PA_API void pa_gc_resurrected_clear(pa_gc_runtime *rt);

/* Seeing the objects, as CPython's gc.get_objects and gc.get_referrers do
 * (finding what keeps an object alive, or what a leak is made of).  Both
 * fill out[0 .. max-1] and return how many there are (0 during a
 * collection, when the lists are being taken apart), without counting a
 * reference to any.  pa_gc_objects: the tracked objects of a generation
 * (0 .. PA_GC_GENERATIONS - 1, PA_GC_GENERATIONS for the frozen ones, -1
 * for all of them); 0 with errno EINVAL for another generation or a NULL
 * runtime.  pa_gc_referrers: the tracked objects whose traverse reports
 * obj (each once); 0 with errno EINVAL for a NULL runtime or obj. */
PA_API size_t pa_gc_objects(const pa_gc_runtime *rt, int generation, void **out, size_t max);
PA_API size_t pa_gc_referrers(const pa_gc_runtime *rt, const void *obj, void **out, size_t max);
/* gc.get_referents: the objects obj's traverse reports, in its order (one
 * reported twice is listed twice); fills out[0 .. max-1] and returns how
 * many there are: 0 for an object whose type has no traverse.  0 with
 * errno EINVAL for NULL, or for a freed object, which is reported as
 * pa_incref reports it. */
PA_API size_t pa_gc_referents(const void *obj, void **out, size_t max);

#ifdef __cplusplus
}
#endif
#endif
