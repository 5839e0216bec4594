/*
 * poolalloc: CPython's memory manager (arenas, pools, blocks) for any C
 * program, thread-safe.
 *
 * Requests of 1..512 bytes are served from pools of one size class each
 * (classes 8 bytes apart by default: a 15-byte request gets a 16-byte block);
 * pools live in arenas mapped from the OS.  Larger requests, and alignments
 * the pools cannot give, go to the raw layer (the C library's malloc).
 * Every function may be called from any thread, and a block may be freed by
 * a thread other than the one that allocated it.
 *
 * Errors follow the C library: a NULL result sets errno to ENOMEM (memory
 * exhausted, or a size that overflows) or EINVAL (a bad alignment).
 */
#ifndef POOLALLOC_H
#define POOLALLOC_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define PA_API __attribute__((visibility("default")))
#define PA_MALLOC_LIKE __attribute__((malloc, warn_unused_result))
#else
#define PA_API
#define PA_MALLOC_LIKE
#endif

/* Requests up to this many bytes are served from pools. */
#define PA_SMALL_REQUEST_THRESHOLD 512
/* The most size classes any build has (8-byte spacing). */
#define PA_MAX_CLASSES 64

/* Allocates size bytes, aligned to 16 when the size class is a multiple of
 * 16 and to 8 otherwise (16 always in a POOLALLOC_ALIGNMENT=16 build).
 * pa_malloc(0) returns a unique pointer that must be freed. */
PA_API PA_MALLOC_LIKE void *pa_malloc(size_t size);

/* Zeroed count * size bytes; NULL with ENOMEM if the product overflows. */
PA_API PA_MALLOC_LIKE void *pa_calloc(size_t count, size_t size);

/* realloc semantics as glibc has them: ptr NULL is pa_malloc(size); size 0
 * with a non-NULL ptr frees it and returns NULL.  A block stays in place when
 * the new size still fits its class and does not shrink below 3/4 of it;
 * data moves across the 512-byte line both ways.  On failure NULL is
 * returned (errno ENOMEM) and ptr is untouched. */
PA_API void *pa_realloc(void *ptr, size_t size);

/* Frees a block from any pa_ function, from any thread.  NULL is a no-op.
 * A pointer the pools did not hand out goes to the raw layer's free. */
PA_API void pa_free(void *ptr);

/* The bytes usable at ptr (at least what was asked for); 0 for NULL. */
PA_API size_t pa_usable_size(const void *ptr);

/* alignment must be a power of two (else NULL, EINVAL). */
PA_API PA_MALLOC_LIKE void *pa_aligned_alloc(size_t alignment, size_t size);

/* POSIX: alignment a power of two and a multiple of sizeof(void *), else
 * EINVAL is returned; ENOMEM on exhaustion.  errno is not changed. */
PA_API int pa_posix_memalign(void **out, size_t alignment, size_t size);

/* Gives back what can be given: frees other threads sent to this thread's
 * pools, empty pools held by this thread and by exited threads, and the one
 * wholly free arena kept as a spare.  Never needed for correctness. */
PA_API void pa_collect(void);

/* ---- Statistics ---------------------------------------------------------- */

struct pa_class_stats {
  size_t block_size;
  size_t pools;            /* pools of this class, used and full */
  size_t blocks_in_use;
  size_t blocks_available; /* free blocks in those pools, carved or not */
};

/* A snapshot.  Arena counters are exact at any time; the pool and block
 * figures are exact when no other thread is allocating while it is taken. */
struct pa_stats {
  /* geometry of this build */
  size_t alignment, size_classes, small_request_threshold, pool_size, arena_size,
      pool_header_size;
  struct pa_class_stats classes[PA_MAX_CLASSES];
  /* arenas */
  size_t arenas_allocated_total; /* ever mapped */
  size_t arenas_released;        /* given back to the OS */
  size_t arenas_highwater;       /* most held at once */
  size_t arenas_current;         /* held now */
  /* pools in the arenas held now */
  size_t pools_used, pools_full, pools_empty, pools_untouched;
  /* bytes: these five add up to arenas_current * arena_size */
  size_t bytes_in_use;          /* in handed-out blocks (their class size) */
  size_t bytes_available;       /* in free blocks of used and full pools */
  size_t bytes_empty_pools;     /* in empty and never-touched pools */
  size_t bytes_pool_headers;    /* pool headers of used and full pools */
  size_t bytes_quantization;    /* tail of each pool too small for a block */
  /* traffic: blocks the pools handed out, ever */
  size_t small_allocations;
  /* raw layer (requests above the threshold, large alignments, foreign
   * pointers): calls, and bytes as the raw allocator sized them */
  size_t raw_allocations, raw_frees, raw_bytes_in_use, raw_bytes_peak;
  /* thread heaps */
  size_t heaps, heaps_abandoned;
  size_t radix_leaves;
};

/* Fills *out; returns 0. */
PA_API int pa_stats_get(struct pa_stats *out);

/* Prints the statistics as sys._debugmallocstats() does for CPython. */
PA_API void pa_stats_print(FILE *out);

#ifdef __cplusplus
}
#endif
#endif
