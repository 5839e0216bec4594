/*
 * The raw layer: the RAW domain's default in the library build, where it
 * is the C library's malloc (as CPython's raw domain is), and what the
 * general allocator does with a pointer that is not poolalloc's: the C
 * library's too, so pa_free of a pa_raw_malloc block still works.
 *
 * Under the override (POOLALLOC_OVERRIDE, src/override.c) poolalloc *is*
 * malloc and no other allocator is ever called: the RAW domain is served
 * by the general allocator (src/domain.c), and a pointer poolalloc did not
 * hand out (a program's bug, or memory from before poolalloc was loaded)
 * is left alone, as mimalloc does: freeing it does nothing, its usable
 * size is 0, and realloc refuses it with ENOMEM.  POOLALLOC_VERBOSE names
 * each one.
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

#include "inline.h"

#ifdef POOLALLOC_OVERRIDE
static void foreign(const char *call, const void *p) {
  if (_pa_options.verbose) _pa_message("poolalloc: %s(%p): not poolalloc's; left alone", call, p);
}

void _pa_raw_free(void *p) { foreign("free", p); }

void *_pa_raw_realloc(void *p, size_t size) {
  (void)size;
  foreign("realloc", p);
  errno = ENOMEM;
  return NULL;
}

size_t _pa_raw_usable_size(const void *p) {
  foreign("malloc_usable_size", p);
  return 0;
}

void _pa_raw_counters(struct pa_stats *out) { (void)out; }
#else
#define system_malloc malloc
#define system_calloc calloc
#define system_realloc realloc
#define system_free free
#define system_usable_size malloc_usable_size

static void *system_aligned(size_t alignment, size_t size) {
  void *p = NULL;
  int failure = posix_memalign(&p, alignment, size);
  if (failure) errno = failure;
  return failure ? NULL : p;
}

/* Each thread counts its raw calls and bytes in its heap (struct
 * pa_heap_counts), so no raw call writes a cache line another thread
 * writes; statistics sum the heaps.  The peak needs a running total: a
 * thread adds its net bytes to `published` only when they have moved
 * PUBLISH_BYTES since it last did, so the peak may miss by up to that much
 * per thread.  Threads past their exit destructor count here at once. */
#define PUBLISH_BYTES ((size_t)1 << 20)
static struct {
  _Atomic size_t published, peak;
  _Atomic size_t late_allocations, late_frees, late_bytes; /* late_bytes: net, modulo 2^64 */
} raw;

static void raise_peak(size_t total) {
  size_t peak = atomic_load_explicit(&raw.peak, memory_order_relaxed);
  while (total > peak && !atomic_compare_exchange_weak_explicit(&raw.peak, &peak, total,
                                                                memory_order_relaxed,
                                                                memory_order_relaxed)) {
  }
}

/* Adds delta (signed, modulo 2^64) to the published total. */
static void publish(size_t delta) {
  size_t total = atomic_fetch_add_explicit(&raw.published, delta, memory_order_relaxed) + delta;
  if ((ptrdiff_t)delta > 0) raise_peak(total);
}

/* One raw call: the blocks it handed out and took back (0 or 1 each; a
 * realloc counts neither) and their bytes. */
static void raw_count(size_t allocations, size_t frees, size_t bytes_out, size_t bytes_in) {
  size_t delta = bytes_out - bytes_in; /* signed, modulo 2^64 */
  pa_heap *heap = pa_counting_heap();
  if (heap == NULL) {
    atomic_fetch_add_explicit(&raw.late_allocations, allocations, memory_order_relaxed);
    atomic_fetch_add_explicit(&raw.late_frees, frees, memory_order_relaxed);
    atomic_fetch_add_explicit(&raw.late_bytes, delta, memory_order_relaxed);
    publish(delta);
    return;
  }
  struct pa_heap_counts *c = &heap->counts;
  c->raw_allocations += allocations;
  c->raw_frees += frees;
  c->raw_bytes_allocated += bytes_out;
  c->raw_bytes_freed += bytes_in;
  delta = c->raw_bytes_allocated - c->raw_bytes_freed - c->raw_bytes_published;
  if (delta + PUBLISH_BYTES - 1 < 2 * PUBLISH_BYTES - 1) return; /* |delta| < PUBLISH_BYTES */
  c->raw_bytes_published += delta;
  publish(delta);
}

static void *raw_counted(void *p) {
  if (p) raw_count(1, 0, system_usable_size(p), 0);
  return p;
}

/* No object may exceed PTRDIFF_MAX bytes (pointer differences must fit);
 * refused here whatever the C library would do. */
static bool raw_too_large(size_t size) {
  if (size <= PTRDIFF_MAX) return false;
  errno = ENOMEM;
  return true;
}

void *_pa_raw_malloc(size_t size) {
  return raw_too_large(size) ? NULL : raw_counted(system_malloc(size));
}

/* The caller has checked that count * size does not overflow. */
void *_pa_raw_calloc(size_t count, size_t size) {
  return raw_too_large(count * size) ? NULL : raw_counted(system_calloc(count, size));
}

void *_pa_raw_aligned(size_t alignment, size_t size) {
  return raw_too_large(size) ? NULL : raw_counted(system_aligned(alignment, size));
}

void _pa_raw_free(void *p) {
  raw_count(0, 1, 0, system_usable_size(p));
  system_free(p);
}

void *_pa_raw_realloc(void *p, size_t size) {
  if (raw_too_large(size)) return NULL;
  size_t old = system_usable_size(p);
  void *q = system_realloc(p, size);
  if (q) raw_count(0, 0, system_usable_size(q), old);
  return q;
}

size_t _pa_raw_usable_size(const void *p) { return system_usable_size((void *)p); }

/* Adds the late counts to the heaps' sums in *out, and settles the peak
 * with the exact total now in use. */
void _pa_raw_counters(struct pa_stats *out) {
  out->raw_allocations += atomic_load_explicit(&raw.late_allocations, memory_order_relaxed);
  out->raw_frees += atomic_load_explicit(&raw.late_frees, memory_order_relaxed);
  out->raw_bytes_in_use += atomic_load_explicit(&raw.late_bytes, memory_order_relaxed);
  raise_peak(out->raw_bytes_in_use);
  out->raw_bytes_peak = atomic_load_explicit(&raw.peak, memory_order_relaxed);
}
#endif
