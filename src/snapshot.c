/*
 * Heap snapshots: every arena held, every pool in it, with the statistics
 * and the thread heaps of the same moment, written as JSON (docs/stats.md).
 * The heap map (`poolalloc run --map`, tools/) draws one cell per pool.
 *
 * A snapshot is first captured into memory mapped from the OS, holding the
 * locks only while pool headers are copied, then written: writing may call
 * malloc (stdio buffers), which must not happen under the arena lock, and
 * the sampler (src/sample.c) keeps the snapshot of the peak in memory until
 * the process exits.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

enum { POOL_EMPTY, POOL_USED, POOL_FULL, POOL_UNTOUCHED };
static const char *const pool_state_names[] = {"empty", "used", "full", "untouched"};

struct snapshot_pool {
  uint8_t state;
  uint8_t size_class;
  uint32_t in_use;
  uint32_t heap; /* owning heap's id; 0 for empty and untouched pools */
};

__attribute__((no_sanitize("thread"))) /* pool headers are read racily, as in stats.c */
static void capture_pool(struct snapshot_pool *out, const pa_pool *pool) {
  if (pool->state == PA_POOL_EMPTY) {
    *out = (struct snapshot_pool){.state = POOL_EMPTY};
    return;
  }
  *out = (struct snapshot_pool){.state = pool->state == PA_POOL_FULL ? POOL_FULL : POOL_USED,
                                .size_class = pool->size_class,
                                .in_use = pool->count,
                                .heap = pool->owner->id};
}

static size_t snapshot_bytes(size_t nheaps, size_t narenas) {
  return sizeof(struct snapshot) + nheaps * sizeof(struct pa_heap_stats) +
         narenas * (sizeof(uintptr_t) + PA_POOLS_PER_ARENA * sizeof(struct snapshot_pool));
}

/* Sizes the record for what is held now plus some slack, and fills it if
 * the arenas still fit; NULL with *retry set if they grew past it. */
static struct snapshot *snapshot_try(bool *retry) {
  struct pa_stats held;
  arenas_lock();
  arenas_counters(&held);
  arenas_unlock();
  size_t heap_room = heaps_count() + 4, arena_room = held.arenas_current + 8;
  size_t bytes = snapshot_bytes(heap_room, arena_room);
  struct snapshot *snap = os_map(bytes);
  *retry = false;
  if (snap == NULL) return NULL;
  snap->mapped = bytes;
  snap->heaps = (struct pa_heap_stats *)(snap + 1);
  snap->bases = (uintptr_t *)(snap->heaps + heap_room);
  snap->pools = (struct snapshot_pool *)(snap->bases + arena_room);
  snap->nheaps = stats_collect(&snap->stats, snap->heaps, heap_room);
  if (snap->nheaps > heap_room) snap->nheaps = heap_room;
  snap->taken_ms = os_monotonic_ms();

  arenas_lock();
  size_t n = 0;
  for (pa_arena *arena = arenas_first(); arena && n < arena_room; arena = arena->all_next, n++) {
    snap->bases[n] = arena->base;
    struct snapshot_pool *pools = &snap->pools[n * PA_POOLS_PER_ARENA];
    size_t carved = (arena->pool_address - arena->base) / PA_POOL_SIZE;
    for (size_t i = 0; i < PA_POOLS_PER_ARENA; i++) {
      if (i < carved)
        capture_pool(&pools[i], (const pa_pool *)(arena->base + i * PA_POOL_SIZE));
      else
        pools[i] = (struct snapshot_pool){.state = POOL_UNTOUCHED};
    }
  }
  bool grew = arenas_first() != NULL && n == arena_room;
  arenas_unlock();
  if (grew) {
    os_unmap(snap, bytes);
    *retry = true;
    return NULL;
  }
  snap->narenas = n;
  return snap;
}

struct snapshot *snapshot_capture(void) {
  for (;;) {
    bool retry;
    struct snapshot *snap = snapshot_try(&retry);
    if (snap || !retry) return snap;
  }
}

void snapshot_release(struct snapshot *snap) {
  if (snap) os_unmap(snap, snap->mapped);
}

static void write_pool(FILE *out, const struct snapshot_pool *pool) {
  if (pool->state == POOL_EMPTY || pool->state == POOL_UNTOUCHED) {
    fprintf(out, "{\"state\":\"%s\"}", pool_state_names[pool->state]);
    return;
  }
  size_t block_size = pa_class_block_size(pool->size_class);
  fprintf(out, "{\"state\":\"%s\",\"class\":%u,\"block_size\":%zu,\"in_use\":%u,"
               "\"capacity\":%zu,\"heap\":%u}",
          pool_state_names[pool->state], pool->size_class, block_size, pool->in_use,
          pa_pool_capacity(block_size), pool->heap);
}

void snapshot_write(FILE *out, const struct snapshot *snap) {
  fprintf(out, "{\"pid\":%d,\"time_ms\":%llu,\"stats\":", (int)getpid(),
          (unsigned long long)snap->taken_ms);
  stats_json_write(out, &snap->stats, snap->heaps, snap->nheaps);
  fputs(",\"arenas\":[", out);
  for (size_t a = 0; a < snap->narenas; a++) {
    fprintf(out, "%s{\"base\":\"0x%llx\",\"pools\":[", a ? "," : "",
            (unsigned long long)snap->bases[a]);
    for (size_t i = 0; i < PA_POOLS_PER_ARENA; i++) {
      if (i) fputc(',', out);
      write_pool(out, &snap->pools[a * PA_POOLS_PER_ARENA + i]);
    }
    fputs("]}", out);
  }
  fputs("]}", out);
}

int pa_heap_snapshot(FILE *out) {
  struct snapshot *snap = snapshot_capture();
  if (snap == NULL) {
    errno = ENOMEM;
    return -1;
  }
  snapshot_write(out, snap);
  fputc('\n', out);
  snapshot_release(snap);
  return ferror(out) ? -1 : 0;
}
