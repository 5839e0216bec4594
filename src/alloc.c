/*
 * The public allocation API: the top of the request path.
 *
 *   pa_malloc(n):  n in 1..512 -> size class (n-1) >> shift -> the calling
 *                  thread's first used pool of that class -> pop its free
 *                  list or carve a virgin block.  Anything else, or an
 *                  exhausted pool, takes heap_malloc_slow().
 *   pa_free(p):    radix lookup p -> arena?  no: raw layer.  yes: the pool is
 *                  p rounded down to the pool size; its owner frees locally,
 *                  other threads push onto the owner's remote stack.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

void *pa_malloc(size_t size) { return pa_malloc_fast(size); }

void pa_free(void *p) { pa_free_fast(p); }

void *pa_calloc(size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  if (total > PA_SMALL_REQUEST_THRESHOLD) return raw_calloc(count, size);
  void *p = pa_malloc(total);
  if (p) memset(p, 0, total);
  return p;
}

size_t pa_usable_size(const void *p) {
  if (p == NULL) return 0;
  if (pa_arena_of(p) == NULL) return raw_usable_size(p);
  return pa_pool_of(p)->block_size;
}

static void *realloc_move(void *p, size_t old_size, size_t size) {
  void *fresh = pa_malloc(size);
  if (fresh == NULL) return NULL;
  memcpy(fresh, p, size < old_size ? size : old_size);
  pa_free(p);
  return fresh;
}

/* A pool block stays in place while its class still holds the new size and
 * would not waste more than a quarter of it (CPython's rule); otherwise it
 * moves, into a pool or out to the raw layer.  A raw block shrinking to a
 * small size moves into a pool, which frees the large one; the raw layer
 * tells how many of its bytes are readable (CPython keeps such blocks raw
 * for want of that, SF bug #1185883). */
void *pa_realloc(void *p, size_t size) {
  if (p == NULL) return pa_malloc(size);
  if (size == 0) {
    pa_free(p);
    return NULL;
  }
  if (pa_arena_of(p) == NULL) {
    if (size <= PA_SMALL_REQUEST_THRESHOLD) return realloc_move(p, raw_usable_size(p), size);
    return raw_realloc(p, size);
  }
  size_t block_size = pa_pool_of(p)->block_size;
  if (size <= block_size && (size * 4 > block_size * 3 || size > block_size - PA_ALIGNMENT))
    return p;
  return realloc_move(p, block_size, size);
}

/* Blocks are PA_ALIGNMENT aligned, and 16-aligned when their class size is a
 * multiple of 16 (pools and headers are); larger alignments go raw. */
void *pa_aligned_alloc(size_t alignment, size_t size) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    errno = EINVAL;
    return NULL;
  }
  if (alignment <= PA_ALIGNMENT) return pa_malloc(size);
  if (alignment == 16 && size <= PA_SMALL_REQUEST_THRESHOLD)
    return pa_malloc(size ? (size + 15) & ~(size_t)15 : 16);
  return raw_aligned(alignment, size);
}

int pa_posix_memalign(void **out, size_t alignment, size_t size) {
  if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
  int saved = errno;
  void *p = pa_aligned_alloc(alignment, size);
  if (p == NULL) {
    errno = saved;
    return ENOMEM;
  }
  *out = p;
  return 0;
}

void pa_collect(void) {
  if (pa_thread_heap != &pa_empty_heap) heap_collect(pa_thread_heap);
  heaps_collect_abandoned();
  arena_release_spare();
}
