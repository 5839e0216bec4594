/*
 * The general allocator, the MEM and OBJ domains' default layer (and
 * RAW's under the override): requests up to a quarter of an arena from the
 * calling thread's pools, in the domain's size class (small, or medium:
 * runs of pools); larger ones, and alignments past a pool, from a mapping
 * each (src/large.c), counted as large in the calling thread's heap.  A
 * pointer that is not poolalloc's goes to the raw layer (src/raw.c: the C
 * library's, not through the RAW domain, so a RAW wrapper sees pa_raw_*
 * only; under the override, where no other allocator exists, it is left
 * alone).
 */
#include <errno.h>
#include <string.h>

#include "inline.h"

/* ---- The general allocator ----------------------------------------------- */

/* Each domain's traffic is counted in the calling thread's heap; these
 * count that of threads past their exit destructor
 * (_pa_heap_for_counting): large blocks and their frees, and pool blocks
 * freed into other threads' pools. */
static struct {
  _Atomic size_t allocations[3];
  _Atomic size_t frees[3];
  _Atomic size_t small_frees[3];
} late;

void _pa_general_counters(struct pa_stats *out) {
  for (int d = PA_DOMAIN_RAW; d <= PA_DOMAIN_OBJ; d++) {
    out->domains[d].large_allocations +=
        atomic_load_explicit(&late.allocations[d], memory_order_relaxed);
    out->domains[d].large_frees += atomic_load_explicit(&late.frees[d], memory_order_relaxed);
    out->domains[d].small_frees += atomic_load_explicit(&late.small_frees[d], memory_order_relaxed);
  }
}

/* One large block through domain, or its free. */
static void count_large(bool is_free, pa_domain domain) {
  pa_heap *heap = pa_counting_heap();
  if (heap)
    (is_free ? heap->counts.large_frees : heap->counts.large_allocations)[domain]++;
  else
    atomic_fetch_add_explicit(&(is_free ? late.frees : late.allocations)[domain], 1,
                              memory_order_relaxed);
}

static void *general_large(size_t size, size_t alignment, bool zero, pa_domain domain) {
  void *p = _pa_large_malloc(size, alignment, zero);
  if (p) count_large(false, domain);
  return p;
}

/* 0 bytes take the smallest class of the domain. */
void *_pa_general_malloc(size_t size, pa_domain domain) {
  if (__builtin_expect(size > PA_LARGE_REQUEST_THRESHOLD, 0)) return general_large(size, 0, false, domain);
  return pa_small_malloc(domain, pa_class_of(domain, size ? size : 1));
}

void *_pa_general_small_slow(pa_heap *heap, size_t cls, pa_domain domain) {
  void *block = _pa_heap_malloc_slow(heap, cls);
  if (block) _pa_thread_heap->counts.allocations[domain]++; /* the heap it has now */
  return block;
}

/* A record with no owner: a large block's (or, misused, a free pool's:
 * a double free once the block's pool or span went empty). */
static void free_unowned(pa_pool *pool, void *p, pa_domain domain) {
  if (pool->state == PA_POOL_LARGE && p == pool->start) {
    count_large(true, domain);
    _pa_large_free(pa_arena_of(p));
    return;
  }
#if PA_SECURE
  _pa_secure_fault(PA_FAULT_DOUBLE_FREE, pool, p);
#else
  _pa_message("poolalloc: free(%p): not a live block (freed twice?); ignored", p);
#endif
}

void _pa_general_free_other(pa_heap *self, pa_pool *pool, void *p, pa_domain domain) {
  if (pool->owner == NULL) {
    free_unowned(pool, p, domain);
    return;
  }
  pa_secure_free(pool, p);
  track_free(p, pool->block_size);
  if (pool->owner == self) {
    self->counts.frees[domain]++;
    pa_pool_free_local(self, pool, p);
    return;
  }
  if (self == &_pa_empty_heap) self = _pa_heap_for_counting();
  if (self)
    self->counts.frees[domain]++;
  else
    atomic_fetch_add_explicit(&late.small_frees[domain], 1, memory_order_relaxed);
  _pa_heap_free_remote(pool->owner, pool, p);
}

void _pa_general_free(void *p, pa_domain domain) {
  pa_block_info block;
  if (pa_block_of(p, &block))
    pa_pool_free(block.pool, p, domain);
  else if (p)
    _pa_raw_free(p);
}

void *_pa_general_calloc(size_t count, size_t size, pa_domain domain) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  if (total > PA_LARGE_REQUEST_THRESHOLD) return general_large(total, 0, true, domain);
  void *p = _pa_general_malloc(total, domain);
  if (p) memset(p, 0, total);
  return p;
}

size_t _pa_general_usable_size(const void *p) {
  pa_block_info block;
  if (p == NULL) return 0;
  if (!pa_block_of(p, &block)) return _pa_raw_usable_size(p);
  return block.size;
}

static void *realloc_move(void *p, size_t old_size, size_t size, pa_domain domain) {
  void *fresh = _pa_general_malloc(size, domain);
  if (fresh == NULL) return NULL;
  memcpy(fresh, p, size < old_size ? size : old_size);
  _pa_general_free(p, domain);
  return fresh;
}

/* A large block below the threshold moves into a pool; otherwise it is
 * resized where it is, or moved by the kernel (src/large.c), and copied
 * only if neither can be done. */
static void *large_realloc(void *p, size_t old_size, size_t size, pa_domain domain) {
  if (size <= PA_LARGE_REQUEST_THRESHOLD) return realloc_move(p, old_size, size, domain);
  void *q = _pa_large_realloc(pa_arena_of(p), size);
  return q ? q : realloc_move(p, old_size, size, domain);
}

/* A pool block stays in place while its class still holds the new size and
 * would not waste more than a quarter of it (CPython's rule); otherwise it
 * moves, into another class or out to a large block.  A pointer that is
 * not poolalloc's goes to the raw layer's realloc. */
void *_pa_general_realloc(void *p, size_t size, pa_domain domain) {
  if (p == NULL) return _pa_general_malloc(size, domain);
  if (size == 0) {
    _pa_general_free(p, domain);
    return NULL;
  }
  pa_block_info block;
  if (!pa_block_of(p, &block)) return _pa_raw_realloc(p, size);
  if (block.state == PA_POOL_LARGE) return large_realloc(p, block.size, size, domain);
  size_t block_size = block.size;
  if (size <= block_size &&
      (size * 4 > block_size * 3 || size > block_size - pa_domain_spacing(domain)))
    return p;
  return realloc_move(p, block_size, size, domain);
}

/* A pool or run starts on a pool boundary (a run of a class of whole
 * pools on a multiple of the largest power of two of pools dividing its
 * block size) and holds no header, so a block is aligned to the largest
 * power of two dividing its class size: the first class at or above size
 * whose blocks are multiples of alignment serves it (a 64-byte alignment
 * of 100 bytes takes 128, a 64 KiB one the 64 KiB class).  Larger
 * alignments, and sizes past the classes, get a span.  The caller has
 * checked that alignment is a power of two. */
void *_pa_general_aligned(size_t alignment, size_t size, pa_domain domain) {
  if (alignment <= pa_domain_spacing(domain)) return _pa_general_malloc(size, domain);
  if (alignment <= PA_LARGE_REQUEST_THRESHOLD && size <= PA_LARGE_REQUEST_THRESHOLD) {
    for (size_t cls = pa_class_of(domain, size ? size : 1); cls < PA_NUM_CLASSES; cls++)
      if (pa_class_block_size((unsigned)cls) % alignment == 0)
        return pa_small_malloc(domain, cls);
  }
  return general_large(size, alignment, false, domain);
}
