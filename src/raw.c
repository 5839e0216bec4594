/*
 * The raw layer: requests above the small-request threshold, alignments the
 * pools cannot give, and every pointer the pools did not hand out.  In this
 * library build it is the C library's allocator, as CPython's is.
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

static struct {
  _Atomic size_t allocations, frees, bytes_in_use;
} raw;

static void *raw_count(void *p) {
  if (p) {
    atomic_fetch_add_explicit(&raw.allocations, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&raw.bytes_in_use, malloc_usable_size(p), memory_order_relaxed);
  }
  return p;
}

/* No object may exceed PTRDIFF_MAX bytes (pointer differences must fit);
 * refused here whatever the C library would do. */
static bool raw_too_large(size_t size) {
  if (size <= PTRDIFF_MAX) return false;
  errno = ENOMEM;
  return true;
}

void *raw_malloc(size_t size) {
  return raw_too_large(size) ? NULL : raw_count(malloc(size));
}

void *raw_calloc(size_t count, size_t size) {
  return raw_too_large(count * size) ? NULL : raw_count(calloc(count, size));
}

void *raw_aligned(size_t alignment, size_t size) {
  if (raw_too_large(size)) return NULL;
  void *p = NULL;
  int failure = posix_memalign(&p, alignment, size);
  if (failure) {
    errno = failure;
    return NULL;
  }
  return raw_count(p);
}

void raw_free(void *p) {
  atomic_fetch_add_explicit(&raw.frees, 1, memory_order_relaxed);
  atomic_fetch_sub_explicit(&raw.bytes_in_use, malloc_usable_size(p), memory_order_relaxed);
  free(p);
}

void *raw_realloc(void *p, size_t size) {
  if (raw_too_large(size)) return NULL;
  size_t old = malloc_usable_size(p);
  void *q = realloc(p, size);
  if (q) {
    atomic_fetch_sub_explicit(&raw.bytes_in_use, old, memory_order_relaxed);
    atomic_fetch_add_explicit(&raw.bytes_in_use, malloc_usable_size(q), memory_order_relaxed);
  }
  return q;
}

size_t raw_usable_size(const void *p) { return malloc_usable_size((void *)p); }

void raw_counters(struct pa_stats *out) {
  out->raw_allocations = atomic_load_explicit(&raw.allocations, memory_order_relaxed);
  out->raw_frees = atomic_load_explicit(&raw.frees, memory_order_relaxed);
  out->raw_bytes_in_use = atomic_load_explicit(&raw.bytes_in_use, memory_order_relaxed);
}
