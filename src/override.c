/*
 * poolalloc as the process's malloc: the C library's allocation entry points
 * and the C++ operators new and delete, for libpoolalloc-override.so
 * (LD_PRELOAD) and libpoolalloc-override.a (link it first).
 *
 * Built from the same sources as the library with POOLALLOC_OVERRIDE, which
 * makes the raw layer call glibc's __libc_malloc family instead of malloc.
 * malloc and free inline the same fast paths as pa_malloc and pa_free: all
 * of these entry points are the MEM domain (src/domain.c).
 *
 * The C++ operators are defined here by their mangled names, in C, so C
 * programs do not come to depend on libstdc++.  A throwing new that fails
 * calls the program's new_handler, as C++ requires, and then throws
 * std::bad_alloc through libstdc++'s std::__throw_bad_alloc; both are weak
 * references, present whenever libstdc++ is loaded (and only C++ code calls
 * the throwing operators).  This file is built with -fexceptions so the
 * exception can unwind through it.
 */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>

#include "inline.h"

#define PA_EXPORT __attribute__((visibility("default"))) PA_ENTRY

PA_EXPORT void *malloc(size_t size) { return pa_malloc_fast(PA_DOMAIN_MEM, size); }
PA_EXPORT void free(void *p) { pa_free_fast(PA_DOMAIN_MEM, p); }
PA_EXPORT void *calloc(size_t count, size_t size) { return pa_calloc(count, size); }
PA_EXPORT void *realloc(void *p, size_t size) { return pa_realloc(p, size); }
PA_EXPORT size_t malloc_usable_size(void *p) { return pa_usable_size(p); }
PA_EXPORT void *aligned_alloc(size_t alignment, size_t size) {
  return pa_aligned_alloc(alignment, size);
}
PA_EXPORT int posix_memalign(void **out, size_t alignment, size_t size) {
  return pa_posix_memalign(out, alignment, size);
}

PA_EXPORT void *reallocarray(void *p, size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return pa_realloc(p, total);
}

/* glibc's memalign takes any alignment and rounds it up to a power of two. */
PA_EXPORT void *memalign(size_t alignment, size_t size) {
  if (alignment > ((size_t)1 << (sizeof(size_t) * 8 - 1))) {
    errno = EINVAL;
    return NULL;
  }
  size_t power = 1;
  while (power < alignment) power <<= 1;
  return pa_aligned_alloc(power, size);
}

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

PA_EXPORT void *valloc(size_t size) { return pa_aligned_alloc(page_size(), size); }

/* The size rounded up to whole pages (one page for 0). */
PA_EXPORT void *pvalloc(size_t size) {
  size_t page = page_size();
  size_t rounded;
  if (__builtin_add_overflow(size, page - 1, &rounded)) {
    errno = ENOMEM;
    return NULL;
  }
  rounded &= ~(page - 1);
  return pa_aligned_alloc(page, rounded ? rounded : page);
}

/* ---- glibc's extensions, answered for poolalloc's heap ------------------ */

/* What poolalloc gives back (pa_collect); 1 if an arena went to the OS.
 * pad is ignored: poolalloc keeps no top of heap to leave room at. */
PA_EXPORT int malloc_trim(size_t pad) {
  (void)pad;
  struct pa_stats before, after;
  pa_stats_get(&before);
  pa_collect();
  pa_stats_get(&after);
  return after.arenas_released > before.arenas_released;
}

/* Accepted and ignored, with success: glibc's tunables (M_MMAP_THRESHOLD,
 * M_ARENA_MAX, ...) describe glibc's heap, not poolalloc's; its own are
 * the POOLALLOC_* variables. */
PA_EXPORT int mallopt(int param, int value) {
  (void)param, (void)value;
  return 1;
}

/* glibc's fields for poolalloc's figures: the arenas held are `arena`,
 * their free blocks and empty pools `fordblks`, pool blocks in use and the
 * large blocks (a mapping each, as glibc's mmapped chunks) `uordblks`, the
 * latter also as `hblks` and `hblkhd`. */
PA_EXPORT struct mallinfo2 mallinfo2(void) {
  struct pa_stats s;
  pa_stats_get(&s);
  return (struct mallinfo2){
      .arena = s.arenas_current * s.arena_size,
      .ordblks = s.pools_empty + s.pools_untouched,
      .hblks = s.large_blocks,
      .hblkhd = s.large_bytes_in_use,
      .uordblks = s.bytes_in_use + s.large_bytes_in_use,
      .fordblks = s.bytes_available + s.bytes_empty_pools,
      .keepcost = s.bytes_empty_pools,
  };
}

/* The old form, in int fields: each figure saturates at INT_MAX. */
static int saturated(size_t n) { return n > INT_MAX ? INT_MAX : (int)n; }
PA_EXPORT struct mallinfo mallinfo(void) {
  struct mallinfo2 m = mallinfo2();
  return (struct mallinfo){.arena = saturated(m.arena),
                           .ordblks = saturated(m.ordblks),
                           .hblks = saturated(m.hblks),
                           .hblkhd = saturated(m.hblkhd),
                           .uordblks = saturated(m.uordblks),
                           .fordblks = saturated(m.fordblks),
                           .keepcost = saturated(m.keepcost)};
}

/* glibc's XML shape, with poolalloc's figures; options must be 0. */
PA_EXPORT int malloc_info(int options, FILE *out) {
  if (options != 0) {
    errno = EINVAL;
    return -1;
  }
  struct pa_stats s;
  pa_stats_get(&s);
  int written = fprintf(out,
                        "<malloc version=\"poolalloc-1\">\n"
                        "<total type=\"arenas\" count=\"%zu\" size=\"%zu\"/>\n"
                        "<total type=\"in-use\" size=\"%zu\"/>\n"
                        "<total type=\"free\" size=\"%zu\"/>\n"
                        "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n"
                        "<system type=\"current\" size=\"%zu\"/>\n"
                        "<system type=\"max\" size=\"%zu\"/>\n"
                        "</malloc>\n",
                        s.arenas_current, s.arenas_current * s.arena_size, s.bytes_in_use,
                        s.bytes_available + s.bytes_empty_pools, s.large_blocks,
                        s.large_bytes_in_use, s.arenas_current * s.arena_size,
                        s.arenas_highwater * s.arena_size);
  return written < 0 ? -1 : 0;
}

/* The statistics, to stderr, as glibc's malloc_stats prints its own. */
PA_EXPORT void malloc_stats(void) { pa_stats_print(stderr); }

/* ---- C++ ------------------------------------------------------------------ */

typedef void (*pa_new_handler)(void);
extern pa_new_handler _ZSt15get_new_handlerv(void) __attribute__((weak)); /* std::get_new_handler */
extern void _ZSt17__throw_bad_allocv(void) __attribute__((weak, noreturn)); /* std::__throw_bad_alloc */

PA_ENTRY static void *new_allocate(size_t size, size_t alignment) {
  return alignment ? pa_aligned_alloc(alignment, size) : pa_malloc_fast(PA_DOMAIN_MEM, size);
}

/* What operator new does when memory runs out: call the new_handler until it
 * gives up, then throw (or return NULL for the nothrow forms). */
__attribute__((noinline)) static void *new_out_of_memory(size_t size, size_t alignment,
                                                        bool nothrow) {
  for (;;) {
    pa_new_handler handler = _ZSt15get_new_handlerv ? _ZSt15get_new_handlerv() : NULL;
    if (handler == NULL) break;
    handler();
    void *p = new_allocate(size, alignment);
    if (p) return p;
  }
  if (nothrow) return NULL;
  if (_ZSt17__throw_bad_allocv) _ZSt17__throw_bad_allocv();
  _pa_message("poolalloc: operator new(%zu): out of memory", size);
  abort();
}

static inline void *new_impl(size_t size, size_t alignment, bool nothrow) {
  void *p = new_allocate(size, alignment);
  return __builtin_expect(p != NULL, 1) ? p : new_out_of_memory(size, alignment, nothrow);
}

/* Itanium C++ ABI names: m = size_t, Pv = void *, RKSt9nothrow_t = const
 * std::nothrow_t &, St11align_val_t = std::align_val_t (a size_t). */
#define NOTHROW const void *
PA_EXPORT void *_Znwm(size_t n) { return new_impl(n, 0, false); }
PA_EXPORT void *_Znam(size_t n) { return new_impl(n, 0, false); }
PA_EXPORT void *_ZnwmRKSt9nothrow_t(size_t n, NOTHROW t) { (void)t; return new_impl(n, 0, true); }
PA_EXPORT void *_ZnamRKSt9nothrow_t(size_t n, NOTHROW t) { (void)t; return new_impl(n, 0, true); }
PA_EXPORT void *_ZnwmSt11align_val_t(size_t n, size_t a) { return new_impl(n, a, false); }
PA_EXPORT void *_ZnamSt11align_val_t(size_t n, size_t a) { return new_impl(n, a, false); }
PA_EXPORT void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t a, NOTHROW t) {
  (void)t;
  return new_impl(n, a, true);
}
PA_EXPORT void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t a, NOTHROW t) {
  (void)t;
  return new_impl(n, a, true);
}

PA_EXPORT void _ZdlPv(void *p) { pa_free_fast(PA_DOMAIN_MEM, p); }
PA_EXPORT void _ZdaPv(void *p) { pa_free_fast(PA_DOMAIN_MEM, p); }
PA_EXPORT void _ZdlPvm(void *p, size_t n) { (void)n; pa_free_fast(PA_DOMAIN_MEM, p); }
PA_EXPORT void _ZdaPvm(void *p, size_t n) { (void)n; pa_free_fast(PA_DOMAIN_MEM, p); }
PA_EXPORT void _ZdlPvRKSt9nothrow_t(void *p, NOTHROW t) { (void)t; pa_free_fast(PA_DOMAIN_MEM, p); }
PA_EXPORT void _ZdaPvRKSt9nothrow_t(void *p, NOTHROW t) { (void)t; pa_free_fast(PA_DOMAIN_MEM, p); }
PA_EXPORT void _ZdlPvSt11align_val_t(void *p, size_t a) { (void)a; pa_free_fast(PA_DOMAIN_MEM, p); }
PA_EXPORT void _ZdaPvSt11align_val_t(void *p, size_t a) { (void)a; pa_free_fast(PA_DOMAIN_MEM, p); }
PA_EXPORT void _ZdlPvmSt11align_val_t(void *p, size_t n, size_t a) {
  (void)n, (void)a;
  pa_free_fast(PA_DOMAIN_MEM, p);
}
PA_EXPORT void _ZdaPvmSt11align_val_t(void *p, size_t n, size_t a) {
  (void)n, (void)a;
  pa_free_fast(PA_DOMAIN_MEM, p);
}
PA_EXPORT void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t a, NOTHROW t) {
  (void)a, (void)t;
  pa_free_fast(PA_DOMAIN_MEM, p);
}
PA_EXPORT void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t a, NOTHROW t) {
  (void)a, (void)t;
  pa_free_fast(PA_DOMAIN_MEM, p);
}
