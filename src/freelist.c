/*
 * Free lists: object-specific allocators on top of the MEM or OBJ domain,
 * as CPython keeps for floats, lists, dicts and tuples by length.
 *
 *   pa_freelist_alloc(list, i)    the calling thread's bin for (list, i)
 *                                 holds an object?  pop it (a hit)
 *                                 : the domain's malloc (a miss)
 *   pa_freelist_free(list, i, p)  the bin holds fewer than max_kept?
 *                                 push p : the domain's free (an overflow)
 *
 * Bins: each live list owns a run of global bin numbers, one per index,
 * given out from a bitmap of PA_FREELIST_MAX_SIZES; the list's record is
 * the registry slot of its first bin.  Each thread heap holds its bins in
 * chunks of 64, made on first use and never freed, so a bin is two loads
 * from the thread pointer and has one writer: no lock and no atomic on the
 * fast paths.
 *
 * Objects leave the bins by being popped, and in bulk: pa_freelist_clear
 * and pa_collect (the calling thread's), the thread's exit (its heap's),
 * and pa_freelist_destroy (every heap's bins of the list).  The bulk ways
 * may meet on the same bins, so each detaches what it takes under the heaps
 * lock and frees it after letting go of the lock (a free into an exited
 * thread's pool takes that lock).
 *
 * Under the debug hooks lists keep nothing: every free reaches the hooks,
 * which then catch double frees and writes after free.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "inline.h"

/* One thread's objects of one free-list index, linked through their first
 * word; PA_FREELIST_BINS_PER_CHUNK of them in each chunk a heap holds.
 * Owned by the heap's thread; statistics read the counters racily. */
struct freelist_bin {
  pa_block *head;
  uint32_t count;
  size_t hits, misses, overflows;
};

struct pa_freelist {
  char name[PA_FREELIST_NAME_MAX];
  size_t size, step;
  unsigned sizes;    /* 0 once destroyed: every index fails the range test */
  unsigned max_kept; /* as configured */
  unsigned keep;     /* max_kept, or 0 under the debug hooks */
  unsigned first_bin;
  pa_domain domain;
};

/* What the statistics and the bulk frees need to know of a bin's objects
 * without the list at hand. */
struct bin_owner {
  size_t size;
  pa_domain domain;
};

static struct {
  pthread_mutex_t lock; /* guards the rest; taken before the heaps lock */
  size_t live;
  uint64_t taken[PA_FREELIST_MAX_SIZES / 64]; /* bins owned by a live list */
  struct pa_freelist lists[PA_FREELIST_MAX_SIZES]; /* by first bin */
  struct bin_owner owners[PA_FREELIST_MAX_SIZES];
} registry = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *(*const domain_alloc[3])(size_t) = {pa_raw_malloc, pa_mem_malloc, pa_obj_malloc};
static void (*const domain_release[3])(void *) = {pa_raw_free, pa_mem_free, pa_obj_free};

static size_t object_size(const pa_freelist *list, unsigned index) {
  return list->size + (size_t)index * list->step;
}

/* The calling thread's bin, or NULL if it has none yet. */
static inline struct freelist_bin *bin_find(const pa_heap *heap, unsigned bin) {
  struct freelist_bin *chunk = pa_heap_freelist_chunk(heap, bin / PA_FREELIST_BINS_PER_CHUNK);
  return chunk ? &chunk[bin % PA_FREELIST_BINS_PER_CHUNK] : NULL;
}

/* The calling thread's bin, made if need be; NULL if out of memory. */
static struct freelist_bin *bin_get(unsigned bin) {
  pa_heap *heap = _pa_heap_current();
  if (heap == NULL) return NULL;
  struct freelist_bin *found = bin_find(heap, bin);
  if (found) return found;
  struct freelist_bin *chunk = _pa_meta_alloc(PA_FREELIST_BINS_PER_CHUNK * sizeof *chunk);
  if (chunk == NULL) return NULL;
  pa_heap_freelist_chunk_set(heap, bin / PA_FREELIST_BINS_PER_CHUNK, chunk);
  return &chunk[bin % PA_FREELIST_BINS_PER_CHUNK];
}

/* ---- The two fast paths and their slow halves ----------------------------- */

/* A thread with no bin for the index yet, or an index out of range. */
__attribute__((noinline)) PA_ENTRY static void *freelist_alloc_slow(pa_freelist *list,
                                                                     unsigned index) {
  if (index >= list->sizes) {
    errno = EINVAL;
    return NULL;
  }
  void *obj = domain_alloc[list->domain](object_size(list, index));
  struct freelist_bin *bin = obj ? bin_get(list->first_bin + index) : NULL;
  if (bin) bin->misses++;
  return obj;
}

/* A miss on a known bin goes straight to the domain (a tail call). */
PA_ENTRY void *pa_freelist_alloc(pa_freelist *list, unsigned index) {
  if (__builtin_expect(index < list->sizes, 1)) {
    struct freelist_bin *bin = bin_find(_pa_thread_heap, list->first_bin + index);
    if (__builtin_expect(bin != NULL, 1)) {
      pa_block *obj = bin->head;
      if (__builtin_expect(obj != NULL, 1)) {
        bin->head = pa_block_next(obj);
        bin->count--;
        bin->hits++;
        track_unkept(obj, object_size(list, index));
        return obj;
      }
      bin->misses++;
      return domain_alloc[list->domain](object_size(list, index));
    }
  }
  return freelist_alloc_slow(list, index);
}

static void freelist_bad_free(const pa_freelist *list, unsigned index, void *obj) {
  if (list->sizes == 0)
    _pa_message("poolalloc: pa_freelist_free(%p): the list was destroyed", obj);
  else
    _pa_message("poolalloc: pa_freelist_free(%p): index %u out of range for free list \"%s\" "
               "(0..%u)", obj, index, list->name, list->sizes - 1);
  _pa_debug_misuse_end();
}

static void bin_push(struct freelist_bin *bin, void *obj, size_t size) {
  pa_block *block = obj;
  pa_block_set_next(block, bin->head);
  bin->head = block;
  bin->count++;
  track_kept(obj, size);
}

/* A thread with no bin for the index yet, or an index out of range. */
__attribute__((noinline)) PA_ENTRY static void freelist_free_slow(pa_freelist *list,
                                                                  unsigned index, void *obj) {
  if (index >= list->sizes) {
    freelist_bad_free(list, index, obj);
  } else {
    struct freelist_bin *bin = bin_get(list->first_bin + index);
    if (bin && bin->count < list->keep) {
      bin_push(bin, obj, object_size(list, index));
      return;
    }
    if (bin) bin->overflows++;
  }
  domain_release[list->domain](obj);
}

PA_ENTRY void pa_freelist_free(pa_freelist *list, unsigned index, void *obj) {
  if (obj == NULL) return;
  if (__builtin_expect(index < list->sizes, 1)) {
    struct freelist_bin *bin = bin_find(_pa_thread_heap, list->first_bin + index);
    if (__builtin_expect(bin != NULL, 1)) {
      if (__builtin_expect(bin->count < list->keep, 1)) {
        bin_push(bin, obj, object_size(list, index));
        return;
      }
      bin->overflows++;
      domain_release[list->domain](obj);
      return;
    }
  }
  freelist_free_slow(list, index, obj);
}

/* ---- Bulk frees ------------------------------------------------------------ */

/* Objects taken off bins, by domain, to be freed once no lock is held. */
struct detached {
  pa_block *head[3];
  size_t count;
};

static void bin_detach(struct freelist_bin *bin, const struct bin_owner *owner,
                       struct detached *out) {
  pa_block *obj = bin->head;
  while (obj) {
    pa_block *next = pa_block_next(obj);
    track_unkept(obj, owner->size);
    obj->next = out->head[owner->domain];
    out->head[owner->domain] = obj;
    out->count++;
    obj = next;
  }
  bin->head = NULL;
  bin->count = 0;
}

/* Takes the heap's objects of bins first .. first+count-1 (those it has). */
static void heap_detach(pa_heap *heap, unsigned first, unsigned count, struct detached *out) {
  for (unsigned b = first; b < first + count; b++) {
    struct freelist_bin *bin = bin_find(heap, b);
    if (bin && bin->count) bin_detach(bin, &registry.owners[b], out);
  }
}

static size_t detached_free(struct detached *objects) {
  for (int d = 0; d < 3; d++) {
    pa_block *obj = objects->head[d];
    while (obj) {
      pa_block *next = obj->next;
      domain_release[d](obj);
      obj = next;
    }
  }
  return objects->count;
}

void _pa_freelists_flush(pa_heap *heap) {
  struct detached objects = {0};
  _pa_heaps_lock();
  heap_detach(heap, 0, PA_FREELIST_MAX_SIZES, &objects);
  _pa_heaps_unlock();
  detached_free(&objects);
}

size_t pa_freelist_clear(pa_freelist *list) {
  pa_heap *heap = _pa_thread_heap;
  struct detached objects = {0};
  _pa_heaps_lock();
  heap_detach(heap, list->first_bin, list->sizes, &objects);
  _pa_heaps_unlock();
  return detached_free(&objects);
}

/* ---- Making and retiring lists ---------------------------------------------- */

static bool bin_taken(unsigned b) { return registry.taken[b / 64] >> (b % 64) & 1; }

static void bins_mark(unsigned first, unsigned count, bool taken) {
  for (unsigned b = first; b < first + count; b++) {
    if (taken)
      registry.taken[b / 64] |= (uint64_t)1 << (b % 64);
    else
      registry.taken[b / 64] &= ~((uint64_t)1 << (b % 64));
  }
}

/* The first bin of a free run of count, or -1. */
static int bins_find_run(unsigned count) {
  unsigned run = 0;
  for (unsigned b = 0; b < PA_FREELIST_MAX_SIZES; b++) {
    run = bin_taken(b) ? 0 : run + 1;
    if (run == count) return (int)(b + 1 - count);
  }
  return -1;
}

static bool config_valid(const struct pa_freelist_config *config) {
  size_t largest;
  return config != NULL && config->size >= sizeof(void *) && config->sizes >= 1 &&
         config->sizes <= PA_FREELIST_MAX_SIZES &&
         (config->domain == PA_DOMAIN_MEM || config->domain == PA_DOMAIN_OBJ) &&
         !__builtin_mul_overflow((size_t)(config->sizes - 1), config->step, &largest) &&
         !__builtin_add_overflow(largest, config->size, &largest);
}

pa_freelist *pa_freelist_create(const struct pa_freelist_config *config) {
  if (!config_valid(config)) {
    errno = EINVAL;
    return NULL;
  }
  _pa_start(); /* the options first: they may turn the debug hooks on */
  pthread_mutex_lock(&registry.lock);
  int first = bins_find_run(config->sizes);
  if (first < 0) {
    pthread_mutex_unlock(&registry.lock);
    errno = ENOMEM;
    return NULL;
  }
  pa_freelist *list = &registry.lists[first];
  *list = (pa_freelist){.size = config->size,
                        .step = config->step,
                        .sizes = config->sizes,
                        .max_kept = config->max_kept,
                        .keep = _pa_debug_hooks_on() ? 0 : config->max_kept,
                        .first_bin = (unsigned)first,
                        .domain = config->domain};
  snprintf(list->name, sizeof list->name, "%s", config->name ? config->name : "freelist");
  for (unsigned i = 0; i < config->sizes; i++)
    registry.owners[first + i] = (struct bin_owner){object_size(list, i), config->domain};
  bins_mark(list->first_bin, list->sizes, true);
  registry.live++;
  pthread_mutex_unlock(&registry.lock);
  return list;
}

/* A record of the registry that is a live list's: forged and retired
 * pointers are refused, not followed. */
static bool list_live(const pa_freelist *list) {
  uintptr_t offset = (uintptr_t)list - (uintptr_t)registry.lists;
  if ((uintptr_t)list < (uintptr_t)registry.lists || offset >= sizeof registry.lists ||
      offset % sizeof *list != 0 || offset / sizeof *list != list->first_bin)
    return false;
  return list->sizes > 0 && bin_taken(list->first_bin);
}

/* The bins first .. first + count - 1 of the heaps walked, and where
 * their objects go. */
struct bin_range {
  unsigned first, count;
  struct detached *out;
  struct pa_freelist_stats *stats;
};

static void heap_retire_bins(void *ctx, pa_heap *heap, const pa_heap_view *view) {
  (void)view;
  struct bin_range *range = ctx;
  heap_detach(heap, range->first, range->count, range->out);
  for (unsigned b = range->first; b < range->first + range->count; b++) {
    struct freelist_bin *bin = bin_find(heap, b);
    if (bin) *bin = (struct freelist_bin){0};
  }
}

/* Every thread heap's bins of the list are zeroed, so the bins can serve a
 * later list from a clean start (counters included). */
static void heaps_retire_bins(unsigned first, unsigned count, struct detached *out) {
  struct bin_range range = {first, count, out, NULL};
  _pa_heaps_lock();
  _pa_heaps_walk(heap_retire_bins, &range);
  _pa_heaps_unlock();
}

void pa_freelist_destroy(pa_freelist *list) {
  if (list == NULL) return;
  struct detached objects = {0};
  pthread_mutex_lock(&registry.lock);
  bool live = list_live(list);
  if (live) {
    heaps_retire_bins(list->first_bin, list->sizes, &objects);
    bins_mark(list->first_bin, list->sizes, false);
    list->sizes = 0;
    registry.live--;
  }
  pthread_mutex_unlock(&registry.lock);
  if (!live) {
    _pa_message("poolalloc: pa_freelist_destroy(%p): not a live free list", (void *)list);
    return;
  }
  detached_free(&objects);
}

/* The live list whose first bin is b, or NULL.  Registry lock held. */
static pa_freelist *list_starting_at(unsigned b) {
  pa_freelist *list = &registry.lists[b];
  return bin_taken(b) && list->first_bin == b && list->sizes ? list : NULL;
}

void _pa_freelists_debug_installed(void) {
  pthread_mutex_lock(&registry.lock);
  for (unsigned b = 0; b < PA_FREELIST_MAX_SIZES; b++) {
    pa_freelist *list = list_starting_at(b);
    if (list) list->keep = 0;
  }
  pthread_mutex_unlock(&registry.lock);
}

/* ---- Statistics ----------------------------------------------------------------- */

RACY_READS static void bin_add(struct pa_freelist_stats *out, const struct freelist_bin *bin,
                               size_t size) {
  out->hits += bin->hits;
  out->misses += bin->misses;
  out->overflows += bin->overflows;
  out->kept += bin->count;
  out->bytes_kept += bin->count * size;
}

RACY_READS void _pa_freelists_count_heap(struct pa_stats *s, const pa_heap *heap) {
  for (unsigned chunk = 0; chunk < PA_FREELIST_CHUNKS; chunk++) {
    const struct freelist_bin *bins = pa_heap_freelist_chunk(heap, chunk);
    if (bins == NULL) continue;
    struct pa_freelist_stats sum = {0};
    for (unsigned i = 0; i < PA_FREELIST_BINS_PER_CHUNK; i++)
      bin_add(&sum, &bins[i], registry.owners[chunk * PA_FREELIST_BINS_PER_CHUNK + i].size);
    s->freelists.hits += sum.hits;
    s->freelists.misses += sum.misses;
    s->freelists.overflows += sum.overflows;
    s->freelists.kept += sum.kept;
    s->freelists.bytes_kept += sum.bytes_kept;
  }
}

size_t _pa_freelists_live(void) {
  pthread_mutex_lock(&registry.lock);
  size_t live = registry.live;
  pthread_mutex_unlock(&registry.lock);
  return live;
}

static void heap_add_bins(void *ctx, pa_heap *heap, const pa_heap_view *view) {
  (void)view;
  struct bin_range *range = ctx;
  for (unsigned b = range->first; b < range->first + range->count; b++) {
    const struct freelist_bin *bin = bin_find(heap, b);
    if (bin) bin_add(range->stats, bin, registry.owners[b].size);
  }
}

/* Called with the registry lock held. */
static void list_stats(const pa_freelist *list, unsigned first, unsigned count,
                       struct pa_freelist_stats *out) {
  *out = (struct pa_freelist_stats){.name = list->name,
                                    .domain = list->domain,
                                    .size = list->size,
                                    .step = list->step,
                                    .sizes = list->sizes,
                                    .max_kept = list->max_kept};
  struct bin_range range = {first, count, NULL, out};
  _pa_heaps_lock();
  _pa_heaps_walk(heap_add_bins, &range);
  _pa_heaps_unlock();
}

int pa_freelist_stats(const pa_freelist *list, int index, struct pa_freelist_stats *out) {
  pthread_mutex_lock(&registry.lock);
  bool valid = list_live(list) && index >= -1 && (index < 0 || (unsigned)index < list->sizes);
  if (valid) {
    unsigned first = list->first_bin + (index < 0 ? 0 : (unsigned)index);
    list_stats(list, first, index < 0 ? list->sizes : 1, out);
  }
  pthread_mutex_unlock(&registry.lock);
  if (!valid) errno = EINVAL;
  return valid ? 0 : -1;
}

size_t _pa_freelists_gather(struct pa_freelist_stats *out, size_t max) {
  size_t filled = 0;
  pthread_mutex_lock(&registry.lock);
  for (unsigned b = 0; b < PA_FREELIST_MAX_SIZES && filled < max; b++) {
    const pa_freelist *list = list_starting_at(b);
    if (list) list_stats(list, b, list->sizes, &out[filled++]);
  }
  pthread_mutex_unlock(&registry.lock);
  return filled;
}
