/*
 * The raw layer: requests above the small-request threshold, alignments the
 * pools cannot give, and every pointer the pools did not hand out.
 *
 * Library build: the C library's malloc, as CPython's raw domain is.
 * Override build (POOLALLOC_OVERRIDE, src/override.c): we *are* malloc, so
 * the raw layer calls glibc's own entry points, __libc_malloc and friends.
 * glibc exports no internal malloc_usable_size; the next definition after
 * ours is found once with dlsym(RTLD_NEXT), when first needed.
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

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
    fn = (size_t (*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
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

static struct {
  _Atomic size_t allocations, frees, bytes_in_use, bytes_peak;
} raw;

static void raw_add_bytes(size_t bytes) {
  size_t now = atomic_fetch_add_explicit(&raw.bytes_in_use, bytes, memory_order_relaxed) + bytes;
  size_t peak = atomic_load_explicit(&raw.bytes_peak, memory_order_relaxed);
  while (now > peak && !atomic_compare_exchange_weak_explicit(&raw.bytes_peak, &peak, now,
                                                              memory_order_relaxed,
                                                              memory_order_relaxed)) {
  }
}

static void *raw_count(void *p) {
  if (p) {
    atomic_fetch_add_explicit(&raw.allocations, 1, memory_order_relaxed);
    raw_add_bytes(system_usable_size(p));
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
  return raw_too_large(size) ? NULL : raw_count(system_malloc(size));
}

/* The caller has checked that count * size does not overflow. */
void *raw_calloc(size_t count, size_t size) {
  return raw_too_large(count * size) ? NULL : raw_count(system_calloc(count, size));
}

void *raw_aligned(size_t alignment, size_t size) {
  return raw_too_large(size) ? NULL : raw_count(system_aligned(alignment, size));
}

void raw_free(void *p) {
  atomic_fetch_add_explicit(&raw.frees, 1, memory_order_relaxed);
  atomic_fetch_sub_explicit(&raw.bytes_in_use, system_usable_size(p), memory_order_relaxed);
  system_free(p);
}

void *raw_realloc(void *p, size_t size) {
  if (raw_too_large(size)) return NULL;
  size_t old = system_usable_size(p);
  void *q = system_realloc(p, size);
  if (q) {
    atomic_fetch_sub_explicit(&raw.bytes_in_use, old, memory_order_relaxed);
    raw_add_bytes(system_usable_size(q));
  }
  return q;
}

size_t raw_usable_size(const void *p) { return system_usable_size((void *)p); }

void raw_counters(struct pa_stats *out) {
  out->raw_allocations = atomic_load_explicit(&raw.allocations, memory_order_relaxed);
  out->raw_frees = atomic_load_explicit(&raw.frees, memory_order_relaxed);
  out->raw_bytes_in_use = atomic_load_explicit(&raw.bytes_in_use, memory_order_relaxed);
  out->raw_bytes_peak = atomic_load_explicit(&raw.bytes_peak, memory_order_relaxed);
}
