/*
 * Heap snapshots: every arena held, every pool in it, with the statistics
 * and the thread heaps of the same moment, written as JSON (docs/stats.md).
 * The heap map (`poolalloc run --map`, tools/) draws one cell per pool.
 *
 * A snapshot is first captured into memory mapped from the OS, by the same
 * walk that takes the statistics (so the two agree), then written: writing may call
 * malloc (stdio buffers), which must not happen under the arena lock, and
 * the sampler (src/sample.c) keeps the snapshot of the peak in memory until
 * the process exits.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "inline.h"

static const char *const pool_state_names[] = {
    [SNAPSHOT_EMPTY] = "empty", [SNAPSHOT_USED] = "used", [SNAPSHOT_FULL] = "full",
    [SNAPSHOT_UNTOUCHED] = "untouched"};

static size_t snapshot_bytes(size_t nheaps, size_t narenas) {
  return sizeof(struct snapshot) + nheaps * sizeof(struct pa_heap_stats) +
         narenas * (sizeof(uintptr_t) + PA_POOLS_PER_ARENA * sizeof(struct snapshot_pool));
}

/* Sizes the record for what is held now plus some slack, and fills it in one
 * walk; NULL with *retry set if the heaps or arenas grew past the slack. */
static struct snapshot *snapshot_try(bool *retry) {
  struct pa_stats held;
  _pa_arenas_lock();
  _pa_arenas_counters(&held);
  _pa_arenas_unlock();
  size_t heap_room = _pa_heaps_count() + 4, arena_room = held.arenas_current + 8;
  size_t bytes = snapshot_bytes(heap_room, arena_room);
  struct snapshot *snap = _pa_os_map(bytes);
  *retry = false;
  if (snap == NULL) return NULL;
  snap->mapped = bytes;
  snap->heaps = (struct pa_heap_stats *)(snap + 1);
  snap->records.bases = (uintptr_t *)(snap->heaps + heap_room);
  snap->records.pools = (struct snapshot_pool *)(snap->records.bases + arena_room);
  snap->records.room = arena_room;
  snap->nheaps = _pa_stats_collect(&snap->stats, snap->heaps, heap_room, &snap->records);
  snap->taken_ms = _pa_os_monotonic_ms();
  if (snap->nheaps > heap_room || snap->records.overflow) {
    _pa_os_unmap(snap, bytes);
    *retry = true;
    return NULL;
  }
  return snap;
}

struct snapshot *_pa_snapshot_capture(void) {
  for (;;) {
    bool retry;
    struct snapshot *snap = snapshot_try(&retry);
    if (snap || !retry) return snap;
  }
}

void _pa_snapshot_release(struct snapshot *snap) {
  if (snap) _pa_os_unmap(snap, snap->mapped);
}

static void write_pool(FILE *out, const struct snapshot_pool *pool) {
  if (pool->state == SNAPSHOT_EMPTY || pool->state == SNAPSHOT_UNTOUCHED) {
    fprintf(out, "{\"state\":\"%s\"}", pool_state_names[pool->state]);
    return;
  }
  size_t block_size = pa_class_block_size(pool->size_class);
  fprintf(out, "{\"state\":\"%s\",\"class\":%u,\"block_size\":%zu,\"in_use\":%u,"
               "\"capacity\":%zu,\"heap\":%u,\"run_pools\":%u,\"run_index\":%u}",
          pool_state_names[pool->state], pool->size_class, block_size, pool->in_use,
          (size_t)pool->run_pools * PA_POOL_SIZE / block_size, pool->heap, pool->run_pools,
          pool->run_index);
}

void _pa_snapshot_write(FILE *out, const struct snapshot *snap) {
  fprintf(out, "{\"pid\":%d,\"time_ms\":%llu,\"stats\":", (int)getpid(),
          (unsigned long long)snap->taken_ms);
  _pa_stats_json_write(out, &snap->stats, snap->heaps, snap->nheaps);
  fputs(",\"arenas\":[", out);
  const struct pool_records *records = &snap->records;
  for (size_t a = 0; a < records->arenas; a++) {
    fprintf(out, "%s{\"base\":\"0x%llx\",\"pools\":[", a ? "," : "",
            (unsigned long long)records->bases[a]);
    for (size_t i = 0; i < PA_POOLS_PER_ARENA; i++) {
      if (i) fputc(',', out);
      write_pool(out, &records->pools[a * PA_POOLS_PER_ARENA + i]);
    }
    fputs("]}", out);
  }
  fputs("]}", out);
}

int pa_heap_snapshot(FILE *out) {
  struct snapshot *snap = _pa_snapshot_capture();
  if (snap == NULL) {
    errno = ENOMEM;
    return -1;
  }
  _pa_snapshot_write(out, snap);
  fputc('\n', out);
  _pa_snapshot_release(snap);
  return ferror(out) ? -1 : 0;
}
