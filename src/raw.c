/*
 * The raw layer: requests above the small-request threshold, alignments the
 * pools cannot give, and every pointer the pools did not hand out.
 *
 * Library build: the C library's malloc, as CPython's raw domain is.
 * Override build (POOLALLOC_OVERRIDE, src/override.c): we *are* malloc, so
 * the raw layer calls glibc's own entry points, __libc_malloc and friends.
 * glibc exports no internal malloc_usable_size, so glibc's own is looked
 * up once in libc itself, when first needed: not the next definition after
 * ours, which in a program linked with another allocator (Debian's
 * redis-server and jemalloc) is that allocator's, and would be handed
 * glibc's pointers.
 */
#include <dlfcn.h>
#include <errno.h>
#include <gnu/lib-names.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

#include "inline.h"

#ifdef POOLALLOC_OVERRIDE
void *__libc_malloc(size_t size);
void *__libc_calloc(size_t count, size_t size);
void *__libc_realloc(void *p, size_t size);
void *__libc_memalign(size_t alignment, size_t size);
void __libc_free(void *p);
#define system_malloc __libc_malloc
#define system_calloc __libc_calloc
#define system_realloc __libc_realloc
#define system_free __libc_free

static void *system_aligned(size_t alignment, size_t size) {
  return __libc_memalign(alignment, size);
}

static size_t system_usable_size(void *p) {
  static _Atomic(size_t (*)(void *)) usable_size;
  size_t (*fn)(void *) = atomic_load_explicit(&usable_size, memory_order_acquire);
  if (fn == NULL) {
    void *libc = dlopen(LIBC_SO, RTLD_LAZY | RTLD_NOLOAD);
    fn = libc ? (size_t (*)(void *))dlsym(libc, "malloc_usable_size") : NULL;
    if (fn == NULL) return 0;
    atomic_store_explicit(&usable_size, fn, memory_order_release);
  }
  return fn(p);
}
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
#endif

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
