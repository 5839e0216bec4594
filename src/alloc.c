/*
 * The general allocator, the MEM and OBJ domains' default layer: requests
 * of 1..512 bytes from the calling thread's pools, in the domain's size
 * class; larger ones and alignments the pools cannot give sent on to the
 * raw layer below (src/raw.c, not through the RAW domain: a RAW wrapper
 * sees pa_raw_* only), and counted as such in the calling thread's heap.
 */
#include <errno.h>
#include <string.h>

#include "inline.h"

/* ---- The general allocator ----------------------------------------------- */

/* Each domain's traffic is counted in the calling thread's heap; these
 * count that of threads past their exit destructor
 * (_pa_heap_for_counting): requests sent on to the raw domain and their
 * frees, and pool blocks freed into other threads' pools. */
static struct {
  _Atomic size_t allocations[3];
  _Atomic size_t frees[3];
  _Atomic size_t small_frees[3];
} late;

void _pa_general_counters(struct pa_stats *out) {
  for (int d = PA_DOMAIN_MEM; d <= PA_DOMAIN_OBJ; d++) {
    out->domains[d].large_allocations +=
        atomic_load_explicit(&late.allocations[d], memory_order_relaxed);
    out->domains[d].large_frees += atomic_load_explicit(&late.frees[d], memory_order_relaxed);
    out->domains[d].small_frees += atomic_load_explicit(&late.small_frees[d], memory_order_relaxed);
  }
}

/* One request through domain sent on to the raw domain, or its free. */
static void count_large(bool is_free, pa_domain domain) {
  pa_heap *heap = pa_counting_heap();
  if (heap)
    (is_free ? heap->counts.large_frees : heap->counts.large_allocations)[domain]++;
  else
    atomic_fetch_add_explicit(&(is_free ? late.frees : late.allocations)[domain], 1,
                              memory_order_relaxed);
}

/* p, a block the raw domain gave for a request through domain, counted. */
static void *large_allocated(void *p, pa_domain domain) {
  if (p) count_large(false, domain);
  return p;
}

static void *general_large(size_t size, pa_domain domain) {
  return large_allocated(_pa_raw_malloc(size), domain);
}

/* 0 bytes take the smallest class of the domain. */
void *_pa_general_malloc(size_t size, pa_domain domain) {
  if (__builtin_expect(size > PA_SMALL_REQUEST_THRESHOLD, 0)) return general_large(size, domain);
  return pa_small_malloc(domain, pa_domain_class(domain, size ? size : 1));
}

void *_pa_general_small_slow(pa_heap *heap, size_t cls, pa_domain domain) {
  void *block = _pa_heap_malloc_slow(heap, cls);
  if (block) _pa_thread_heap->counts.allocations[domain]++; /* the heap it has now */
  return block;
}

void _pa_general_free_remote(pa_heap *self, pa_pool *pool, void *p, pa_domain domain) {
  if (self == &_pa_empty_heap) self = _pa_heap_for_counting();
  if (self)
    self->counts.frees[domain]++;
  else
    atomic_fetch_add_explicit(&late.small_frees[domain], 1, memory_order_relaxed);
  _pa_heap_free_remote(pool->owner, p);
}

void _pa_general_free(void *p, pa_domain domain) {
  pa_block_info block;
  if (pa_block_of(p, &block)) {
    pa_pool_free(block.pool, p, domain);
  } else if (p) {
    count_large(true, domain);
    _pa_raw_free(p);
  }
}

void *_pa_general_calloc(size_t count, size_t size, pa_domain domain) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  if (total > PA_SMALL_REQUEST_THRESHOLD) return large_allocated(_pa_raw_calloc(count, size), domain);
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

/* A pool block stays in place while its class still holds the new size and
 * would not waste more than a quarter of it (CPython's rule); otherwise it
 * moves, into a pool or out to the raw domain.  A raw block shrinking to a
 * small size moves into a pool, which frees the large one; the raw layer
 * tells how many of its bytes are readable (CPython keeps such blocks raw
 * for want of that, SF bug #1185883).  A raw block growing stays raw and
 * counts as no new request. */
void *_pa_general_realloc(void *p, size_t size, pa_domain domain) {
  if (p == NULL) return _pa_general_malloc(size, domain);
  if (size == 0) {
    _pa_general_free(p, domain);
    return NULL;
  }
  pa_block_info block;
  if (!pa_block_of(p, &block)) {
    if (size <= PA_SMALL_REQUEST_THRESHOLD)
      return realloc_move(p, _pa_general_usable_size(p), size, domain);
    return _pa_raw_realloc(p, size);
  }
  size_t block_size = block.size;
  if (size <= block_size &&
      (size * 4 > block_size * 3 || size > block_size - pa_domain_spacing(domain)))
    return p;
  return realloc_move(p, block_size, size, domain);
}

/* Blocks are aligned to their domain's class spacing, and 16-aligned when
 * their class size is a multiple of 16 (pools and headers are); larger
 * alignments go raw.  The caller has checked that alignment is a power of
 * two. */
void *_pa_general_aligned(size_t alignment, size_t size, pa_domain domain) {
  if (alignment <= pa_domain_spacing(domain)) return _pa_general_malloc(size, domain);
  if (alignment == 16 && size <= PA_SMALL_REQUEST_THRESHOLD)
    return _pa_general_malloc(size ? (size + 15) & ~(size_t)15 : 16, domain);
  return large_allocated(_pa_raw_aligned(alignment, size), domain);
}
