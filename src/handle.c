/*
 * Handles: objects reached through a table, so that they can move.
 *
 *   handle  = generation << 32 | (slot + 1)        never 0
 *   slot    = {object address, generation, pins}   (free: next free slot)
 *   table   = {slots, its own heap}
 *
 * The table's heap is a pa_heap like a thread's, owned by no thread: the
 * table's user allocates from it without a lock (one thread at a time), and
 * since nothing else allocates there, its pools hold the table's objects
 * only, and moving them empties pools.
 *
 * pa_compact, per size class: the pools holding the table's objects are
 * ordered pinned first (they cannot be emptied), then fullest first; the
 * leading pools become targets until the objects of the rest fit into the
 * targets' free blocks; every object of the rest moves into a target, its
 * slot is updated, and the emptied pools go back to the arenas, the wholly
 * free arenas to the OS.  The pools of the table are found from its slots
 * (full pools are in no list), deduplicated with an open-addressing set.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "inline.h"

struct pa_handles {
  struct pa_handles_header header; /* first: the inline pa_handle_get reads it */
  pa_heap *heap;
  unsigned free_slot; /* first free slot + 1; 0: none */
  size_t mapped;      /* bytes of the slots' mapping */
  size_t live, pinned;
};

#define SLOTS_FIRST 1024
#define SLOTS_MAX 0xfffffffeu /* slot + 1 fits the handle's 32 bits */

_Static_assert(sizeof(struct pa_handles) <= 4096, "a table fits a page");

pa_handles *pa_handles_create(void) {
  _pa_start(); /* the options first: POOLALLOC_DEBUG decides misuse's end */
  pa_handles *table = _pa_os_map(sizeof *table);
  if (table == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  table->heap = _pa_heap_table_make();
  if (table->heap == NULL) {
    _pa_os_unmap(table, sizeof *table);
    errno = ENOMEM;
    return NULL;
  }
  return table;
}

/* Doubles the slots (moving them: objects stay where they are), the new
 * ones chained as free. */
static bool slots_grow(pa_handles *table) {
  size_t old = table->header.nslots;
  size_t count = old ? old * 2 : SLOTS_FIRST;
  if (count > SLOTS_MAX) count = SLOTS_MAX;
  if (count == old) return false;
  size_t bytes = count * sizeof(struct pa_handle_slot);
  struct pa_handle_slot *slots = _pa_os_map(bytes);
  if (slots == NULL) return false;
  if (old) memcpy(slots, table->header.slots, old * sizeof *slots);
  for (size_t i = old; i < count; i++) slots[i].word = i + 1 < count ? (unsigned)(i + 2) : 0;
  if (table->header.slots) _pa_os_unmap(table->header.slots, table->mapped);
  table->header.slots = slots;
  table->header.nslots = (unsigned)count;
  table->mapped = bytes;
  table->free_slot = (unsigned)old + 1;
  return true;
}

/* Objects are laid out by the caller, so they are 16-byte aligned: the size
 * is rounded up to a multiple of 16, a class whose blocks all are. */
static void *object_alloc(pa_handles *table, size_t size) {
  if (size > PA_SMALL_REQUEST_THRESHOLD) return pa_obj_malloc(size);
  size = size ? (size + 15) & ~(size_t)15 : 16;
  size_t cls = pa_domain_class(PA_DOMAIN_OBJ, size);
  return pa_heap_take_block(table->heap, cls, PA_DOMAIN_OBJ);
}

/* Whether obj is one of the table's pool objects (*block filled); an object
 * above the small threshold came through the OBJ domain, from the pools
 * of whichever thread made it, or a span, and is not the table's. */
static bool table_object(const pa_handles *table, const void *obj, pa_block_info *block) {
  return obj != NULL && pa_block_of(obj, block) && pa_pool_owned_by(block->pool, table->heap);
}

/* A pool object goes back into the table's own pool, whichever thread uses
 * the table now; a larger one through the OBJ domain. */
static void object_free(pa_handles *table, void *obj) {
  pa_block_info block;
  if (!table_object(table, obj, &block)) {
    pa_obj_free(obj);
    return;
  }
  pa_heap_free_block(table->heap, block.pool, obj, PA_DOMAIN_OBJ);
}

PA_ENTRY pa_handle pa_handle_alloc(pa_handles *table, size_t size) {
  if (table->free_slot == 0 && !slots_grow(table)) {
    errno = ENOMEM;
    return 0;
  }
  void *obj = object_alloc(table, size);
  if (obj == NULL) return 0;
  unsigned index = table->free_slot - 1;
  struct pa_handle_slot *slot = &table->header.slots[index];
  table->free_slot = slot->word;
  slot->object = obj;
  slot->word = 0;
  table->live++;
  return (pa_handle)slot->generation << 32 | (index + 1);
}

/* ---- Checking handles ------------------------------------------------------ */

static void handle_report(const pa_handles *table, pa_handle handle, const char *call,
                          const char *fault) {
  _pa_message("poolalloc: %s(%p, 0x%llx): %s", call, (const void *)table, handle, fault);
  _pa_debug_misuse_end();
}

/* The live slot the handle names, or NULL after a report. */
static struct pa_handle_slot *slot_of(pa_handles *table, pa_handle handle, const char *call) {
  unsigned index = (unsigned)handle - 1;
  if (handle == 0) {
    handle_report(table, handle, call, "0 is not a handle");
    return NULL;
  }
  if (index >= table->header.nslots) {
    handle_report(table, handle, call, "not a handle of this table");
    return NULL;
  }
  struct pa_handle_slot *slot = &table->header.slots[index];
  if (slot->generation != (unsigned)(handle >> 32) || slot->object == NULL) {
    char fault[96];
    snprintf(fault, sizeof fault, "a freed handle (generation %u; the slot is at %u)",
             (unsigned)(handle >> 32), slot->generation);
    handle_report(table, handle, call, fault);
    return NULL;
  }
  return slot;
}

void *pa_handle_invalid(pa_handles *table, pa_handle handle) {
  slot_of(table, handle, "pa_handle_get");
  errno = EINVAL;
  return NULL;
}

void *pa_handle_pin(pa_handles *table, pa_handle handle) {
  struct pa_handle_slot *slot = slot_of(table, handle, "pa_handle_pin");
  if (slot == NULL || slot->word == ~0u) {
    errno = EINVAL;
    return NULL;
  }
  if (slot->word++ == 0) table->pinned++;
  return slot->object;
}

int pa_handle_unpin(pa_handles *table, pa_handle handle) {
  struct pa_handle_slot *slot = slot_of(table, handle, "pa_handle_unpin");
  if (slot && slot->word == 0) {
    handle_report(table, handle, "pa_handle_unpin", "not pinned");
    slot = NULL;
  }
  if (slot == NULL) {
    errno = EINVAL;
    return -1;
  }
  if (--slot->word == 0) table->pinned--;
  return 0;
}

static void slot_release(pa_handles *table, struct pa_handle_slot *slot) {
  object_free(table, slot->object);
  slot->object = NULL;
  slot->generation++;
  slot->word = table->free_slot;
  table->free_slot = (unsigned)(slot - table->header.slots) + 1;
  table->live--;
}

PA_ENTRY void pa_handle_free(pa_handles *table, pa_handle handle) {
  if (handle == 0) return;
  struct pa_handle_slot *slot = slot_of(table, handle, "pa_handle_free");
  if (slot == NULL) return;
  if (slot->word != 0) {
    handle_report(table, handle, "pa_handle_free", "the object is pinned; it stays");
    return;
  }
  slot_release(table, slot);
}

void pa_handles_destroy(pa_handles *table) {
  if (table == NULL) return;
  for (unsigned i = 0; i < table->header.nslots; i++) {
    struct pa_handle_slot *slot = &table->header.slots[i];
    if (slot->object) object_free(table, slot->object);
  }
  _pa_heap_table_retire(table->heap);
  if (table->header.slots) _pa_os_unmap(table->header.slots, table->mapped);
  _pa_os_unmap(table, sizeof *table);
}

/* ---- Compaction ------------------------------------------------------------- */

/* One pool holding the table's objects. */
struct pool_info {
  pa_pool *pool;
  uint32_t count;       /* blocks in use when the compaction began */
  uint32_t arena_pools; /* pools in use in its arena then (any heap's) */
  uint8_t size_class;
  bool pinned; /* holds a pinned object: stays, and takes others in */
  bool source; /* to be emptied */
};

/* The table's pools, found through its slots; mapped from the OS. */
struct pool_set {
  struct pool_info *info;
  uint32_t *index; /* open addressing: info index + 1, 0 empty */
  size_t count, room, buckets;
};

static bool pool_set_init(struct pool_set *set, size_t room) {
  set->room = room;
  set->buckets = 16;
  while (set->buckets < 2 * room) set->buckets *= 2;
  set->count = 0;
  set->info = _pa_os_map(room * sizeof *set->info);
  set->index = _pa_os_map(set->buckets * sizeof *set->index);
  return set->info && set->index;
}

static void pool_set_release(struct pool_set *set) {
  if (set->info) _pa_os_unmap(set->info, set->room * sizeof *set->info);
  if (set->index) _pa_os_unmap(set->index, set->buckets * sizeof *set->index);
}

static size_t pool_bucket(const struct pool_set *set, const pa_pool *pool) {
  return ((uintptr_t)pool / PA_POOL_SIZE * 0x9e3779b97f4a7c15ULL >> 20) & (set->buckets - 1);
}

/* The bucket holding the pool, or the empty one where it would go. */
static size_t pool_set_bucket(const struct pool_set *set, const pa_pool *pool) {
  size_t bucket = pool_bucket(set, pool);
  while (set->index[bucket] != 0 && set->info[set->index[bucket] - 1].pool != pool)
    bucket = (bucket + 1) & (set->buckets - 1);
  return bucket;
}

/* The record of the block's pool, added if new. */
static struct pool_info *pool_set_find(struct pool_set *set, const pa_block_info *block) {
  size_t bucket = pool_set_bucket(set, block->pool);
  if (set->index[bucket]) return &set->info[set->index[bucket] - 1];
  struct pool_info *info = &set->info[set->count++];
  *info = (struct pool_info){block->pool, block->in_use, 0, block->size_class, false, false};
  set->index[bucket] = (uint32_t)set->count;
  return info;
}

/* Per class: pinned first; then the pools of the busiest arenas, so that
 * the objects gather there and the quiet arenas empty whole; then, within
 * an arena, fullest first (fewest moves).  Any order keeps the fewest pools:
 * each target chosen adds a pool's capacity to the room. */
static int pool_order(const void *a, const void *b) {
  const struct pool_info *x = a, *y = b;
  uintptr_t x_arena = (uintptr_t)x->pool >> PA_ARENA_BITS;
  uintptr_t y_arena = (uintptr_t)y->pool >> PA_ARENA_BITS;
  if (x->size_class != y->size_class) return x->size_class < y->size_class ? -1 : 1;
  if (x->pinned != y->pinned) return x->pinned ? -1 : 1;
  if (x->arena_pools != y->arena_pools) return x->arena_pools > y->arena_pools ? -1 : 1;
  if (x_arena != y_arena) return x_arena < y_arena ? -1 : 1;
  return (x->count < y->count) - (x->count > y->count);
}

/* How busy each pool's arena is, read under the arena lock. */
static void pools_rank_arenas(struct pool_set *set) {
  _pa_arenas_lock();
  for (size_t i = 0; i < set->count; i++) {
    set->info[i].arena_pools = _pa_arena_pools_in_use(set->info[i].pool);
  }
  _pa_arenas_unlock();
}

/* Marks the pools of one class (info[0..n-1], in pool_order) to empty: the
 * leading ones stay until the objects of the rest fit their free blocks. */
static void choose_sources(struct pool_info *info, size_t n) {
  size_t capacity = pa_pool_capacity(pa_class_block_size(info[0].size_class));
  size_t remaining = 0, room = 0;
  for (size_t i = 0; i < n; i++) remaining += info[i].count;
  for (size_t i = 0; i < n; i++) {
    info[i].source = !info[i].pinned && remaining <= room;
    if (!info[i].source) room += capacity - info[i].count;
    remaining -= info[i].count;
  }
}

/* The table's pools (their records deduplicated, sorted, sources chosen);
 * false if out of memory. */
static bool pools_gather(pa_handles *table, struct pool_set *set) {
  size_t room = table->live ? table->live : 1;
  if (!pool_set_init(set, room)) return false;
  for (unsigned i = 0; i < table->header.nslots; i++) {
    struct pa_handle_slot *slot = &table->header.slots[i];
    pa_block_info block;
    if (!table_object(table, slot->object, &block)) continue;
    struct pool_info *info = pool_set_find(set, &block);
    info->pinned |= slot->word != 0;
  }
  pools_rank_arenas(set);
  qsort(set->info, set->count, sizeof *set->info, pool_order);
  for (size_t first = 0, last; first < set->count; first = last) {
    for (last = first; last < set->count && set->info[last].size_class == set->info[first].size_class;)
      last++;
    choose_sources(&set->info[first], last - first);
  }
  memset(set->index, 0, set->buckets * sizeof *set->index); /* rebuilt for the sorted order */
  for (size_t i = 0; i < set->count; i++)
    set->index[pool_set_bucket(set, set->info[i].pool)] = (uint32_t)(i + 1);
  return true;
}

/* A free block of a target pool of the class, from `*cursor` on. */
static void *target_block(pa_heap *heap, struct pool_set *set, size_t *cursor) {
  for (; !set->info[*cursor].source; (*cursor)++) {
    void *block = _pa_pool_take_for(heap, set->info[*cursor].pool);
    if (block) return block;
  }
  return NULL;
}

static size_t arenas_released_now(void) {
  struct pa_stats s;
  _pa_arenas_lock();
  _pa_arenas_counters(&s);
  _pa_arenas_unlock();
  return s.arenas_released;
}

size_t pa_compact(pa_handles *table, struct pa_compact_stats *out) {
  struct pa_compact_stats stats = {.handles = table->live, .objects_pinned = table->pinned};
  size_t released_before = arenas_released_now();
  _pa_heap_collect(table->heap); /* frees other threads sent, and empty pools, first */
  struct pool_set set;
  if (pools_gather(table, &set)) {
    stats.pools_before = set.count;
    /* the first pool of each class, where its targets begin */
    size_t first_of_class[PA_NUM_CLASSES];
    for (size_t i = set.count; i-- > 0;) first_of_class[set.info[i].size_class] = i;
    for (unsigned i = 0; i < table->header.nslots; i++) {
      struct pa_handle_slot *slot = &table->header.slots[i];
      pa_block_info block;
      if (slot->word != 0 || !table_object(table, slot->object, &block)) continue;
      if (!pool_set_find(&set, &block)->source) continue;
      void *to = target_block(table->heap, &set, &first_of_class[block.size_class]);
      if (to == NULL) continue; /* cannot happen: the targets were sized to hold them */
      size_t block_size = block.size;
      memcpy(to, slot->object, block_size);
      pa_pool_free_owned(table->heap, block.pool, slot->object); /* may unmap the pool */
      slot->object = to;
      stats.objects_moved++;
      stats.bytes_moved += block_size;
    }
    for (size_t i = 0; i < set.count; i++) stats.pools_released += set.info[i].source;
    stats.pools_after = stats.pools_before - stats.pools_released;
  } else {
    errno = ENOMEM; /* nothing moved */
  }
  pool_set_release(&set);
  _pa_heap_collect(table->heap);
  _pa_arenas_release_empty();
  stats.arenas_released = arenas_released_now() - released_before;
  if (out) *out = stats;
  return stats.pools_released * PA_POOL_SIZE;
}
