/*
 * Large blocks: requests above PA_LARGE_REQUEST_THRESHOLD (a quarter of an
 * arena, 64 KiB by default), and alignments the pools cannot give, each in
 * a *span* of its own:
 *
 *   OS ──mmap, aligned to the arena size──> span: n arena-sized chunks
 *   span   [block: size rounded up to a page][never touched ........]
 *   radix  every chunk ──> the span's record (a struct pa_arena)
 *   record pools[0]: state PA_POOL_LARGE, start = the block;
 *          pools[1..]: PA_POOL_RUN, pointing back to pools[0]
 *
 * So the block query, the fast free path and every feature find a large
 * block through the same record lookup as a pool block, at no cost to
 * them: a span's record has no owner, so the fast free path's owner test
 * fails and its out-of-line path brings the block here.  The span is a
 * whole number of chunks, so no pointer of another allocator ever lies in
 * a chunk the radix tree calls poolalloc's; the block's usable size is its
 * request rounded up to a page, and the rest of the last chunk is mapped
 * but never touched (address space, not memory), which lets realloc grow
 * the block in place without a system call.  Past the span, realloc asks
 * mremap to grow it where it is, else to move its pages (no copy) to a
 * fresh aligned place.
 *
 * Freed spans wait in a small cache, so a loop that allocates and frees a
 * megabyte neither maps nor unmaps: at most LARGE_CACHE_SPANS spans and
 * POOLALLOC_LARGE_CACHE_MB megabytes (8 by default, 0 for none: as the
 * arenas' warm bound, so a program that frees everything and sleeps keeps
 * little), each
 * for the arena decay delay (POOLALLOC_ARENA_DECAY_MS); the oldest go back
 * to the OS first, at the next large request or free, or slow allocation
 * (_pa_large_decay_due), or pa_collect().  A cached span serves a request
 * it holds: whole if the request is at least two thirds of it, else with
 * the chunks past the request given back first (a span freed at a peak
 * then adds nothing to the next one).  A fresh mapping is zero:
 * calloc clears only a cached one.
 */
#include <errno.h>
#include <string.h>

#include "inline.h"

#define LARGE_CACHE_SPANS 16

static struct {
  pthread_mutex_t lock;
  pa_arena *cache[LARGE_CACHE_SPANS]; /* freed spans, oldest first */
  unsigned cached;
  size_t cached_bytes;
  size_t blocks, bytes_in_use, bytes_mapped; /* live spans */
  size_t maps, cache_hits;                   /* ever */
} large = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* When the oldest cached span has waited out the delay; 0 when none
 * waits.  Read without the lock by slow allocations: its own cache line. */
static _Alignas(64) _Atomic uint64_t decay_due_ms;

void _pa_large_lock(void) { pthread_mutex_lock(&large.lock); }
void _pa_large_unlock(void) { pthread_mutex_unlock(&large.lock); }

static size_t round_up(size_t size, size_t unit) { return (size + unit - 1) & ~(unit - 1); }

/* The records of a span at base: the first serves the block, the others
 * (one per pool of a chunk: every chunk shares the record) point to it. */
static void span_set(pa_arena *span, char *base, size_t bytes, size_t usable) {
  *span = (pa_arena){.base = (uintptr_t)base, .mapping = base, .mapping_size = bytes,
                     .large_size = usable};
  span->pools[0] = (pa_pool){.start = base, .size_class = PA_CLASS_NONE,
                             .state = PA_POOL_LARGE, .run_pools = 1};
  for (unsigned k = 1; k < PA_POOLS_PER_ARENA; k++) {
    span->pools[k] = (pa_pool){.start = base + k * PA_POOL_SIZE, .size_class = PA_CLASS_NONE,
                               .state = PA_POOL_RUN};
    span->serving[k] = pa_serving_offset(0);
  }
}

static pa_arena *span_map(size_t bytes, size_t alignment, size_t usable) {
  pa_arena *span = _pa_arena_record_take();
  if (span == NULL) return NULL;
  char *base = _pa_os_map_aligned(bytes, alignment, 0);
  if (base == NULL || !_pa_arenas_register_span(span, (uintptr_t)base, bytes)) {
    if (base) _pa_os_unmap(base, bytes);
    _pa_arena_record_give(span);
    errno = ENOMEM;
    return NULL;
  }
  span_set(span, base, bytes, usable);
  pthread_mutex_lock(&large.lock);
  large.maps++;
  pthread_mutex_unlock(&large.lock);
  return span;
}

static void span_unmap(pa_arena *span) {
  _pa_arenas_unregister_span(span->base, span->mapping_size);
  _pa_os_unmap_aligned((void *)span->base, span->mapping_size);
  _pa_arena_record_give(span);
}

/* The chunks past `bytes` go back to the OS. */
static void span_shrink(pa_arena *span, size_t bytes) {
  _pa_arenas_unregister_span(span->base + bytes, span->mapping_size - bytes);
  _pa_os_unmap((char *)span->base + bytes, span->mapping_size - bytes);
}

static size_t cache_limit(void) { return (size_t)_pa_options.large_cache_mb << 20; }

/* Takes cache slot i out; with the lock held. */
static pa_arena *cache_remove(unsigned i) {
  pa_arena *span = large.cache[i];
  large.cached_bytes -= span->mapping_size;
  memmove(&large.cache[i], &large.cache[i + 1], (large.cached - i - 1) * sizeof *large.cache);
  large.cached--;
  return span;
}

/* A span that holds bytes with no more than a third of itself to spare
 * serves them whole; a larger one gives its tail back first. */
static bool span_fits(size_t have, size_t bytes) { return have / 3 * 2 <= bytes; }

/* A span of `have` bytes serves a request of `bytes` better than one of
 * `other`: it fits and the other does not, so a loop of two sizes keeps
 * a span of each; else it is the smaller. */
static bool serves_better(size_t have, size_t other, size_t bytes) {
  if (span_fits(have, bytes) != span_fits(other, bytes)) return span_fits(have, bytes);
  return have < other;
}

/* The cached span that serves bytes best, aligned as asked; with the lock
 * held. */
static pa_arena *cache_take(size_t bytes, size_t alignment) {
  unsigned best = LARGE_CACHE_SPANS;
  for (unsigned i = 0; i < large.cached; i++) {
    size_t have = large.cache[i]->mapping_size;
    if (have >= bytes && (large.cache[i]->base & (alignment - 1)) == 0 &&
        (best == LARGE_CACHE_SPANS || serves_better(have, large.cache[best]->mapping_size, bytes)))
      best = i;
  }
  return best == LARGE_CACHE_SPANS ? NULL : cache_remove(best);
}

static void due_update(void) {
  uint64_t due = large.cached ? large.cache[0]->empty_since_ms + (uint64_t)_pa_arenas_decay_delay_ms() : 0;
  if (atomic_load_explicit(&decay_due_ms, memory_order_relaxed) != due)
    atomic_store_explicit(&decay_due_ms, due, memory_order_relaxed);
}

/* Takes out, into out[], the cached spans past the bounds or the delay
 * (all with everything set); with the lock held.  Returns how many. */
static unsigned cache_expire(pa_arena **out, bool everything) {
  uint64_t now = large.cached ? _pa_os_monotonic_ms() : 0;
  uint64_t delay = (uint64_t)_pa_arenas_decay_delay_ms();
  unsigned n = 0;
  while (large.cached > 0 && (everything || large.cached_bytes > cache_limit() ||
                              now - large.cache[0]->empty_since_ms >= delay))
    out[n++] = cache_remove(0);
  due_update();
  return n;
}

static void unmap_all(pa_arena **spans, unsigned n) {
  for (unsigned i = 0; i < n; i++) span_unmap(spans[i]);
}

/* Gives back the cached spans past the delay, or all of them. */
static void large_expire(bool everything) {
  pa_arena *expired[LARGE_CACHE_SPANS];
  pthread_mutex_lock(&large.lock);
  unsigned n = cache_expire(expired, everything);
  pthread_mutex_unlock(&large.lock);
  unmap_all(expired, n);
}

void _pa_large_decay_due(void) {
  uint64_t due = atomic_load_explicit(&decay_due_ms, memory_order_relaxed);
  if (due != 0 && _pa_os_monotonic_ms() >= due) large_expire(false);
}

void _pa_large_release_cached(void) { large_expire(true); }

/* span counted in (live) or out of the live figures; with the lock held. */
static void count_live(const pa_arena *span, bool live) {
  size_t sign = live ? 1 : SIZE_MAX; /* +1 or -1, modulo 2^64 */
  large.blocks += sign;
  large.bytes_in_use += sign * span->large_size;
  large.bytes_mapped += sign * span->mapping_size;
}

void *_pa_large_malloc(size_t size, size_t alignment, bool zero) {
  size_t page = _pa_os_page_size();
  if (alignment < PA_ARENA_SIZE) alignment = PA_ARENA_SIZE;
  if (size > PTRDIFF_MAX - alignment) {
    errno = ENOMEM;
    return NULL;
  }
  size_t usable = round_up(size ? size : 1, page);
  size_t bytes = round_up(usable, PA_ARENA_SIZE);
  pa_arena *expired[LARGE_CACHE_SPANS];
  pthread_mutex_lock(&large.lock);
  pa_arena *span = cache_take(bytes, alignment);
  unsigned n = cache_expire(expired, false);
  large.cache_hits += span != NULL;
  pthread_mutex_unlock(&large.lock);
  unmap_all(expired, n);
  if (span) {
    if (!span_fits(span->mapping_size, bytes)) {
      span_shrink(span, bytes);
      span->mapping_size = bytes;
    }
    span_set(span, (char *)span->base, span->mapping_size, usable);
    if (zero) memset((void *)span->base, 0, usable);
  } else if ((span = span_map(bytes, alignment, usable)) == NULL) {
    return NULL;
  }
  pthread_mutex_lock(&large.lock);
  count_live(span, true);
  pthread_mutex_unlock(&large.lock);
  return (void *)span->base;
}

/* Marked free (a second free finds PA_POOL_EMPTY), then cached, or given
 * back if it is larger than the cache. */
void _pa_large_free(pa_arena *span) {
  pa_arena *expired[LARGE_CACHE_SPANS + 1];
  unsigned n = 0;
  span->pools[0].state = PA_POOL_EMPTY;
  pthread_mutex_lock(&large.lock);
  count_live(span, false);
  bool cache = span->mapping_size <= cache_limit();
  if (cache) {
    if (large.cached == LARGE_CACHE_SPANS) expired[n++] = cache_remove(0);
    span->empty_since_ms = _pa_os_monotonic_ms();
    large.cache[large.cached++] = span;
    large.cached_bytes += span->mapping_size;
  }
  n += cache_expire(expired + n, false);
  pthread_mutex_unlock(&large.lock);
  unmap_all(expired, n);
  if (!cache) span_unmap(span);
}

/* The span grown to `bytes`: where it is if the pages after it are free,
 * else its pages moved to a fresh aligned place; false if neither. */
static bool span_grow(pa_arena *span, size_t bytes, size_t usable) {
  char *base = (char *)span->base;
  size_t old = span->mapping_size;
  if (_pa_os_remap(base, old, bytes, NULL)) {
    if (_pa_arenas_register_span(span, span->base + old, bytes - old)) {
      span->mapping_size = bytes;
      span->large_size = usable;
      return true;
    }
    _pa_os_remap(base, bytes, old, NULL); /* shrinking in place cannot fail */
    return false;
  }
  char *to = _pa_os_map_aligned(bytes, PA_ARENA_SIZE, 0);
  if (to == NULL) return false;
  if (!_pa_arenas_register_span(span, (uintptr_t)to, bytes)) {
    _pa_os_unmap(to, bytes);
    return false;
  }
  if (_pa_os_remap(base, old, bytes, to) == NULL) {
    _pa_arenas_unregister_span((uintptr_t)to, bytes);
    _pa_os_unmap(to, bytes);
    return false;
  }
  _pa_arenas_unregister_span((uintptr_t)base, old);
  span_set(span, to, bytes, usable);
  return true;
}

void *_pa_large_realloc(pa_arena *span, size_t size) {
  if (size > PTRDIFF_MAX - PA_ARENA_SIZE) {
    errno = ENOMEM;
    return NULL;
  }
  size_t usable = round_up(size, _pa_os_page_size());
  size_t bytes = round_up(usable, PA_ARENA_SIZE);
  pthread_mutex_lock(&large.lock);
  count_live(span, false);
  pthread_mutex_unlock(&large.lock);
  bool resized = true;
  if (bytes <= span->mapping_size) {
    size_t keep = bytes < span->mapping_size / 2 ? bytes : span->mapping_size;
    if (keep < span->mapping_size) span_shrink(span, keep);
    span->mapping_size = keep;
    span->large_size = usable;
  } else {
    resized = span_grow(span, bytes, usable);
  }
  pthread_mutex_lock(&large.lock);
  count_live(span, true);
  pthread_mutex_unlock(&large.lock);
  return resized ? (void *)span->base : NULL;
}

void _pa_large_counters(struct pa_stats *out) {
  pthread_mutex_lock(&large.lock);
  out->large_blocks = large.blocks;
  out->large_bytes_in_use = large.bytes_in_use;
  out->large_bytes_mapped = large.bytes_mapped;
  out->large_bytes_cached = large.cached_bytes;
  out->large_maps = large.maps;
  out->large_cache_hits = large.cache_hits;
  pthread_mutex_unlock(&large.lock);
}
