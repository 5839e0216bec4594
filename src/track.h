/*
 * Telling memory checkers about the pools.  Blocks live inside arenas the
 * checkers see as one big mapping; these hooks describe each block's life:
 *
 *   track_malloc(p, n)     a block of n bytes is handed out
 *   track_free(p, n)       it came back; only its first word (the free-list
 *                          link, which poolalloc itself reads and writes)
 *                          stays addressable
 *   track_link_read(p)     poolalloc is about to read a free block's link
 *   track_noaccess(p, n)   memory no program may touch (a fresh arena)
 *   track_undefined(p, n)  memory poolalloc itself will write (a pool header)
 *   track_kept(p, n)       an object goes onto a free list: only its first
 *                          word (the link) stays addressable (ASan only:
 *                          for Valgrind it is still a live block)
 *   track_unkept(p, n)     it leaves the free list
 *
 * Valgrind (build with -DPOOLALLOC_VALGRIND=ON): client requests, so memcheck
 * reports leaks and invalid accesses of pool blocks as it does for malloc.
 * AddressSanitizer builds: free blocks are poisoned.  Otherwise all of it
 * compiles to nothing (the client requests would cost the fast paths about
 * a dozen instructions each, so Valgrind support is a build option).
 */
#ifndef POOLALLOC_TRACK_H
#define POOLALLOC_TRACK_H

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PA_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define PA_ASAN 1
#endif

#if defined(POOLALLOC_VALGRIND)
#include <valgrind/memcheck.h>
#define track_malloc(p, n) VALGRIND_MALLOCLIKE_BLOCK((p), (n), 0, 0)
#define track_free(p, n)                                  \
  do {                                                    \
    VALGRIND_FREELIKE_BLOCK((p), 0);                      \
    VALGRIND_MAKE_MEM_UNDEFINED((p), sizeof(void *));     \
  } while (0)
#define track_link_read(p) VALGRIND_MAKE_MEM_DEFINED((p), sizeof(void *))
#define track_noaccess(p, n) VALGRIND_MAKE_MEM_NOACCESS((p), (n))
#define track_undefined(p, n) VALGRIND_MAKE_MEM_UNDEFINED((p), (n))
#elif defined(PA_ASAN)
#include <sanitizer/asan_interface.h>
#define track_malloc(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define track_free(p, n) \
  ASAN_POISON_MEMORY_REGION((char *)(p) + sizeof(void *), (n) - sizeof(void *))
#define track_link_read(p) ((void)(p))
#define track_noaccess(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define track_undefined(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define track_kept(p, n) \
  ASAN_POISON_MEMORY_REGION((char *)(p) + sizeof(void *), (n) - sizeof(void *))
#define track_unkept(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define track_malloc(p, n) ((void)(p), (void)(n))
#define track_free(p, n) ((void)(p), (void)(n))
#define track_link_read(p) ((void)(p))
#define track_noaccess(p, n) ((void)(p), (void)(n))
#define track_undefined(p, n) ((void)(p), (void)(n))
#endif
#if !defined(PA_ASAN)
#define track_kept(p, n) ((void)(p), (void)(n))
#define track_unkept(p, n) ((void)(p), (void)(n))
#endif

#endif
