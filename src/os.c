/*
 * The only file that talks to the operating system: anonymous mappings for
 * arenas, radix leaves and metadata, and poolalloc's messages (straight to
 * fd 2 with write(2): they may be written from inside malloc, where stdio
 * is not safe).  Another OS gets another copy of this file and nothing else
 * changes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static struct {
  _Atomic size_t maps; /* _pa_os_map calls ever, refused ones included */
  /* Fault injection: maps numbered fail_first..fail_last (counting from 1
   * since start-up) are refused; fail_first 0 means none is. */
  _Atomic size_t fail_first, fail_last;
  _Atomic size_t failures_injected; /* maps refused on purpose, ever */
  /* The next aligned mapping is tried right below this address first: it
   * follows the aligned mappings made and rises to the top of any given
   * back (see _pa_os_map_aligned).  Racy by design: a stale value only
   * makes a try miss. */
  _Atomic uintptr_t aligned_next;
} os;

size_t _pa_os_failures_injected(void) {
  return atomic_load_explicit(&os.failures_injected, memory_order_relaxed);
}

size_t _pa_os_maps(void) { return atomic_load_explicit(&os.maps, memory_order_relaxed); }

void _pa_os_fail_maps(size_t first, size_t last) {
  atomic_store_explicit(&os.fail_last, last, memory_order_relaxed);
  atomic_store_explicit(&os.fail_first, first, memory_order_relaxed);
}

void _pa_os_fail_after(long countdown) {
  if (countdown < 0)
    _pa_os_fail_maps(0, 0);
  else
    _pa_os_fail_maps(_pa_os_maps() + (size_t)countdown + 1, SIZE_MAX);
}

static bool os_injected_failure(void) {
  size_t number = atomic_fetch_add_explicit(&os.maps, 1, memory_order_relaxed) + 1;
  size_t first = atomic_load_explicit(&os.fail_first, memory_order_relaxed);
  if (first == 0 || number < first ||
      number > atomic_load_explicit(&os.fail_last, memory_order_relaxed))
    return false;
  atomic_fetch_add_explicit(&os.failures_injected, 1, memory_order_relaxed);
  return true;
}

void *_pa_os_map(size_t size) {
  bool injected = os_injected_failure();
  void *p = injected ? MAP_FAILED
                     : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    if (_pa_options.verbose)
      _pa_message("poolalloc: mmap of %zu bytes failed: %s", size,
                 injected ? "injected failure" : strerror(errno));
    errno = ENOMEM;
    return NULL;
  }
  return p;
}

/* Memory the checkers were told no one may touch (a fresh arena's pools)
 * is made plain again first: ASan keeps poison past munmap, and the next
 * mapping at that address (a trace chunk, a metadata chunk) would be
 * reported when poolalloc itself writes it. */
void _pa_os_unmap(void *p, size_t size) {
  track_undefined(p, size);
  munmap(p, size);
}

/* size bytes at exactly `at`, or NULL when any of that range is mapped
 * (or the kernel, older than 4.17, took MAP_FIXED_NOREPLACE as a hint and
 * put them elsewhere).  Counted as a map for fault injection; a refusal
 * here is the caller's to fall back from, so it says nothing. */
static void *map_at(uintptr_t at, size_t size) {
  if (os_injected_failure()) return NULL;
  void *p = mmap((void *)at, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == MAP_FAILED) return NULL;
  if (p != (void *)at) {
    munmap(p, size);
    return NULL;
  }
  return p;
}

/* Without a guard, the aligned range right below os.aligned_next is tried
 * first: below the last aligned mapping made, so the kernel merges the
 * two into one mapping, or at the top of space given back, so that it is
 * taken again before any lower (without that, rounds of arenas taken and
 * given back walked down the address space: 6 GiB in 200 rounds of 32
 * MiB).  Mapped twice as large with the ends trimmed, as is done when the
 * try misses, every arena and span was a mapping of its own: 16 GiB of
 * arenas, or 65,000 live blocks of 100 KiB, reached the process's limit
 * of 65,530 mappings (vm.max_map_count), past which every mmap of the
 * process fails, a thread's stack included.  Guarded mappings (secure
 * builds' arenas) are mappings of their own anyway. */
static void *map_below_next(size_t size, size_t alignment) {
  uintptr_t next = atomic_load_explicit(&os.aligned_next, memory_order_relaxed);
  if (next < size + alignment) return NULL;
  uintptr_t at = (next - size) & ~(uintptr_t)(alignment - 1);
  void *p = map_at(at, size);
  if (p != NULL) atomic_store_explicit(&os.aligned_next, at, memory_order_relaxed);
  return p;
}

/* mmap only promises page alignment: after the try above, map size +
 * alignment and give back the ragged ends, keeping `guard` bytes of the
 * tail (always at least a page of it: the head is at most alignment -
 * page) as PROT_NONE.  Arenas are taken rarely, so the syscalls are
 * cheap. */
void *_pa_os_map_aligned(size_t size, size_t alignment, size_t guard) {
  void *below = guard ? NULL : map_below_next(size, alignment);
  if (below != NULL) return below;
  char *raw = _pa_os_map(size + alignment);
  if (raw == NULL) return NULL;
  uintptr_t start = ((uintptr_t)raw + alignment - 1) & ~(uintptr_t)(alignment - 1);
  size_t head = start - (uintptr_t)raw;
  size_t tail = alignment - head;
  if (head) _pa_os_unmap(raw, head);
  if (guard) mprotect((char *)start + size, guard, PROT_NONE);
  if (tail > guard) _pa_os_unmap((char *)start + size + guard, tail - guard);
  if (!guard) atomic_store_explicit(&os.aligned_next, start, memory_order_relaxed);
  return (void *)start;
}

void _pa_os_unmap_aligned(void *p, size_t size) {
  _pa_os_unmap(p, size);
  uintptr_t top = (uintptr_t)p + size;
  uintptr_t next = atomic_load_explicit(&os.aligned_next, memory_order_relaxed);
  while (top > next && !atomic_compare_exchange_weak_explicit(&os.aligned_next, &next, top,
                                                              memory_order_relaxed,
                                                              memory_order_relaxed)) {
  }
}

void _pa_os_purge(void *p, size_t size) { madvise(p, size, MADV_DONTNEED); }

void *_pa_os_remap(void *p, size_t old, size_t size, void *to) {
  void *q = to ? mremap(p, old, size, MREMAP_MAYMOVE | MREMAP_FIXED, to) : mremap(p, old, size, 0);
  return q == MAP_FAILED ? NULL : q;
}

size_t _pa_os_page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

bool _pa_os_random(void *buf, size_t size) {
  return getrandom(buf, size, 0) == (ssize_t)size;
}

/* Whether [p, p + size) is mapped, asked without touching it (mincore fails
 * with ENOMEM on an unmapped page), so the debug hooks can look at the bytes
 * before a pointer they were handed without faulting. */
bool _pa_os_is_mapped(const void *p, size_t size) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  uintptr_t first = (uintptr_t)p & ~(uintptr_t)(page - 1);
  uintptr_t end = (uintptr_t)p + size;
  unsigned char residency[4];
  size_t pages = (end - first + page - 1) / page;
  if (end < (uintptr_t)p || pages > sizeof residency) return false;
  return mincore((void *)first, end - first, residency) == 0;
}

int _pa_os_thread_id(void) { return (int)syscall(SYS_gettid); }

/* The second field of /proc/self/statm, read with no malloc: the sampler
 * calls it while the program runs. */
size_t _pa_os_resident_bytes(void) {
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char text[128];
  ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  if (n <= 0) return 0;
  text[n] = '\0';
  char *field = strchr(text, ' ');
  if (field == NULL) return 0;
  return (size_t)strtoull(field + 1, NULL, 10) * (size_t)sysconf(_SC_PAGESIZE);
}

/* The coarse clock (the kernel's last tick, a few ms fine): the decay
 * checks of slow allocations read it, and the fine clock's timer read cost
 * a Larson-style server 11% of its time. */
uint64_t _pa_os_monotonic_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

/* A line to stderr with write(2): safe wherever malloc is not. */
void _pa_message(const char *format, ...) {
  char line[256];
  va_list args;
  va_start(args, format);
  int n = vsnprintf(line, sizeof line - 1, format, args);
  va_end(args);
  if (n < 0) return;
  if ((size_t)n > sizeof line - 2) n = sizeof line - 2;
  line[n++] = '\n';
  ssize_t ignored = write(STDERR_FILENO, line, (size_t)n);
  (void)ignored;
}
