/*
 * Statistics: a walk over every thread heap and every pool carved in every
 * arena held, as CPython's sys._debugmallocstats() does, plus the counters
 * kept by the arena, heap, general and raw layers.  Printed for people
 * (pa_stats_print) and as JSON for programs (pa_stats_json, docs/stats.md).
 *
 * The walk holds the heaps lock and the arena lock, so the set of heaps,
 * arenas and pools is exact; the figures inside a pool header and a heap's
 * counters are written by their owning thread without a lock, and are read
 * here as they are (hence no_sanitize: these reads race by design).
 */
#include <errno.h>
#include <string.h>

#include "inline.h"

/* Adds one used or full pool (or run, seen at its first pool) to the class
 * table and byte totals given. */
static void count_pool(struct pa_class_stats *classes, size_t *bytes_in_use,
                       size_t *bytes_available, size_t *bytes_quantization, const pa_pool_view *pool) {
  if (pool->run_index != 0) return;
  struct pa_class_stats *cls = &classes[pool->size_class];
  size_t block_size = pa_class_block_size(pool->size_class);
  size_t bytes = (size_t)pool->run_pools * PA_POOL_SIZE;
  size_t capacity = bytes / block_size;
  cls->pools += pool->run_pools;
  cls->blocks_in_use += pool->in_use;
  cls->blocks_available += capacity - pool->in_use;
  *bytes_in_use += (size_t)pool->in_use * block_size;
  *bytes_available += (capacity - pool->in_use) * block_size;
  *bytes_quantization += bytes % block_size;
}

/* What the walk fills: the totals, heaps 1..max, and the pool records. */
struct walk {
  struct pa_stats *s;
  struct pa_heap_stats *per_heap;
  size_t max;
  struct pool_records *records;
};

static void stats_add_pool(struct walk *w, const pa_pool_view *pool) {
  struct pa_stats *s = w->s;
  if (pool->state == PA_POOL_UNTOUCHED || pool->state == PA_POOL_EMPTY) {
    s->pools_untouched += pool->state == PA_POOL_UNTOUCHED;
    s->pools_empty += pool->state == PA_POOL_EMPTY;
    return;
  }
  bool full = pool->state == PA_POOL_FULL;
  s->pools_full += full;
  s->pools_used += !full;
  count_pool(s->classes, &s->bytes_in_use, &s->bytes_available, &s->bytes_quantization, pool);
  if (pool->heap == 0 || pool->heap > w->max) return;
  struct pa_heap_stats *h = &w->per_heap[pool->heap - 1];
  h->pools_full += full;
  h->pools_used += !full;
  count_pool(h->classes, &h->bytes_in_use, &h->bytes_available, &h->bytes_quantization, pool);
}

RACY_READS static void stats_add_heap(void *ctx, pa_heap *heap, const pa_heap_view *view) {
  struct walk *w = ctx;
  struct pa_stats *s = w->s;
  s->heaps++;
  s->heaps_abandoned += view->abandoned;
  const struct pa_heap_counts *c = view->counts;
  size_t allocations = 0, frees = 0;
  for (int d = PA_DOMAIN_RAW; d <= PA_DOMAIN_OBJ; d++) {
    s->domains[d].small_allocations += c->allocations[d];
    s->domains[d].small_frees += c->frees[d];
    s->domains[d].large_allocations += c->large_allocations[d];
    s->domains[d].large_frees += c->large_frees[d];
    allocations += c->allocations[d];
    frees += c->frees[d];
  }
  s->raw_allocations += c->raw_allocations;
  s->raw_frees += c->raw_frees;
  s->raw_bytes_in_use += c->raw_bytes_allocated - c->raw_bytes_freed; /* modulo 2^64 */
  _pa_freelists_count_heap(s, heap);
  if (view->id > w->max) return;
  struct pa_heap_stats *h = &w->per_heap[view->id - 1];
  h->id = view->id;
  h->thread = view->thread;
  h->handles = view->table;
  h->small_allocations = allocations;
  h->small_frees = frees;
}

static void stats_geometry(struct pa_stats *s, struct pa_class_stats *classes) {
  s->alignment = PA_ALIGNMENT;
  s->size_classes = PA_NUM_CLASSES;
  s->small_request_threshold = PA_SMALL_REQUEST_THRESHOLD;
  s->large_request_threshold = PA_LARGE_REQUEST_THRESHOLD;
  s->pool_size = PA_POOL_SIZE;
  s->arena_size = PA_ARENA_SIZE;
  s->pool_record_size = sizeof(pa_pool);
  for (unsigned cls = 0; cls < PA_NUM_CLASSES; cls++)
    classes[cls].block_size = pa_class_block_size(cls);
}

/* The pool's record for the heap map: a new arena's row at its pool 0. */
static void record_pool(struct pool_records *records, uintptr_t arena, unsigned index,
                        const pa_pool_view *pool) {
  if (index == 0) {
    if (records->arenas == records->room) records->overflow = true;
    if (records->overflow) return;
    records->bases[records->arenas++] = arena;
  }
  if (records->overflow) return;
  static const uint8_t states[] = {[PA_POOL_EMPTY] = SNAPSHOT_EMPTY, [PA_POOL_USED] = SNAPSHOT_USED,
                                   [PA_POOL_FULL] = SNAPSHOT_FULL,
                                   [PA_POOL_UNTOUCHED] = SNAPSHOT_UNTOUCHED};
  bool live = pool->state == PA_POOL_USED || pool->state == PA_POOL_FULL;
  records->pools[(records->arenas - 1) * PA_POOLS_PER_ARENA + index] = (struct snapshot_pool){
      .state = states[pool->state],
      .size_class = live ? pool->size_class : 0,
      .run_pools = pool->run_pools,
      .run_index = pool->run_index,
      .in_use = live ? pool->in_use : 0,
      .heap = live ? pool->heap : 0};
}

static void walk_pool(void *ctx, uintptr_t arena, unsigned index, const pa_pool_view *pool) {
  struct walk *w = ctx;
  stats_add_pool(w, pool);
  if (w->records) record_pool(w->records, arena, index, pool);
}

size_t _pa_stats_collect(struct pa_stats *s, struct pa_heap_stats *per_heap, size_t max,
                     struct pool_records *records) {
  memset(s, 0, sizeof *s);
  stats_geometry(s, s->classes);
  for (size_t i = 0; i < max; i++) {
    memset(&per_heap[i], 0, sizeof per_heap[i]);
    stats_geometry(s, per_heap[i].classes);
  }
  struct walk w = {s, per_heap, max, records};
  _pa_heaps_lock();
  _pa_heaps_walk(stats_add_heap, &w);
  _pa_arenas_lock();
  _pa_arenas_counters(s);
  _pa_arenas_walk(walk_pool, &w);
  s->radix_leaves = _pa_radix_leaves();
  _pa_arenas_unlock();
  _pa_heaps_unlock();
  s->bytes_empty_pools = (s->pools_empty + s->pools_untouched) * PA_POOL_SIZE;
  s->bytes_metadata = _pa_meta_mapped();
  _pa_general_counters(s);
  for (int d = PA_DOMAIN_RAW; d <= PA_DOMAIN_OBJ; d++) {
    s->small_allocations += s->domains[d].small_allocations;
    s->small_frees += s->domains[d].small_frees;
  }
  s->freelists.lists = _pa_freelists_live();
  _pa_trace_rounding(&s->rounding_blocks, &s->bytes_rounding);
  _pa_raw_counters(s);
  _pa_large_counters(s);
  s->domains[PA_DOMAIN_RAW].large_allocations += s->raw_allocations;
  s->domains[PA_DOMAIN_RAW].large_frees += s->raw_frees;
  return s->heaps;
}

int pa_stats_get(struct pa_stats *s) {
  _pa_stats_collect(s, NULL, 0, NULL);
  return 0;
}

size_t pa_stats_heaps(struct pa_heap_stats *out, size_t max) {
  struct pa_stats totals;
  return _pa_stats_collect(&totals, out, out ? max : 0, NULL);
}

/* Heaps for printing and JSON: mapped from the OS, as the caller may be
 * short of memory or be reporting at exit.  NULL (and *count 0) if none. */
static struct pa_heap_stats *heaps_gather(struct pa_stats *s, size_t *count) {
  size_t n = _pa_heaps_count();
  struct pa_heap_stats *heaps = n ? _pa_os_map(n * sizeof *heaps) : NULL;
  *count = heaps ? n : 0; /* heaps made meanwhile are left out: ids only grow */
  _pa_stats_collect(s, heaps, *count, NULL);
  return heaps;
}

static void heaps_release(struct pa_heap_stats *heaps, size_t count) {
  if (heaps) _pa_os_unmap(heaps, count * sizeof *heaps);
}

/* ---- For people ---------------------------------------------------------- */

/* 1234567 -> "1,234,567", as CPython prints its totals. */
static const char *with_commas(size_t value, char buf[32]) {
  char digits[24];
  int n = snprintf(digits, sizeof digits, "%zu", value);
  int out = 0;
  for (int i = 0; i < n; i++) {
    if (i > 0 && (n - i) % 3 == 0) buf[out++] = ',';
    buf[out++] = digits[i];
  }
  buf[out] = '\0';
  return buf;
}

static void print_line(FILE *out, const char *label, size_t value) {
  char buf[32];
  fprintf(out, "%-34s = %21s\n", label, with_commas(value, buf));
}

static void print_classes(FILE *out, const struct pa_class_stats *classes, size_t count) {
  fprintf(out, "class   size   num pools   blocks in use  avail blocks\n"
               "-----   ----   ---------   -------------  ------------\n");
  for (size_t cls = 0; cls < count; cls++) {
    const struct pa_class_stats *c = &classes[cls];
    if (c->pools == 0) continue;
    fprintf(out, "%5zu %6zu %11zu %15zu %13zu\n", cls, c->block_size, c->pools,
            c->blocks_in_use, c->blocks_available);
  }
}

static void print_bytes(FILE *out, const struct pa_stats *s) {
  print_line(out, "# bytes in allocated blocks", s->bytes_in_use);
  print_line(out, "# bytes in available blocks", s->bytes_available);
  char label[64];
  snprintf(label, sizeof label, "%zu unused pools * %zu bytes", s->pools_empty + s->pools_untouched,
           s->pool_size);
  print_line(out, label, s->bytes_empty_pools);
  print_line(out, "# bytes lost to quantization", s->bytes_quantization);
  if (s->rounding_blocks) {
    char label[64];
    snprintf(label, sizeof label, "  of which size-class rounding (%zu traced)", s->rounding_blocks);
    print_line(out, label, s->bytes_rounding);
  } else {
    fprintf(out, "%-34s = %21s\n", "  of which size-class rounding", "unknown (not tracing)");
  }
  print_line(out, "Total", s->bytes_in_use + s->bytes_available + s->bytes_empty_pools +
                               s->bytes_quantization);
  print_line(out, "# bytes in poolalloc's records", s->bytes_metadata);
}

static void print_arenas(FILE *out, const struct pa_stats *s) {
  print_line(out, "# arenas allocated total", s->arenas_allocated_total);
  print_line(out, "# arenas reclaimed", s->arenas_released);
  print_line(out, "# arenas highwater mark", s->arenas_highwater);
  print_line(out, "# arenas allocated current", s->arenas_current);
  /* read apart from *s: pa_stats has no room for it (ABI) */
  print_line(out, "  of which wholly free (decay)", _pa_arenas_empty_count());
  char label[64];
  snprintf(label, sizeof label, "%zu arenas * %zu bytes/arena", s->arenas_current, s->arena_size);
  print_line(out, label, s->arenas_current * s->arena_size);
}

static void print_heaps(FILE *out, const struct pa_heap_stats *heaps, size_t count) {
  fprintf(out, "heap  thread      pools used/full  bytes in use  bytes avail   "
               "allocations         frees\n");
  for (size_t i = 0; i < count; i++) {
    const struct pa_heap_stats *h = &heaps[i];
    char thread[16];
    if (h->handles)
      snprintf(thread, sizeof thread, "(handles)");
    else if (h->thread)
      snprintf(thread, sizeof thread, "%d", h->thread);
    else
      snprintf(thread, sizeof thread, "(exited)");
    fprintf(out, "%4u  %-10s %9zu/%-6zu %13zu %12zu %13zu %13zu\n", h->id, thread,
            h->pools_used, h->pools_full, h->bytes_in_use, h->bytes_available,
            h->small_allocations, h->small_frees);
  }
}

static const char *const domain_names[3] = {"raw", "mem", "obj"};

static void print_traffic(FILE *out, const struct pa_stats *s) {
  fprintf(out, "domain    pool allocs     pool frees   large allocs    large frees\n");
  for (int d = 0; d < 3; d++) {
    const struct pa_domain_stats *t = &s->domains[d];
    fprintf(out, "%-6s %14zu %14zu %14zu %14zu\n", domain_names[d], t->small_allocations,
            t->small_frees, t->large_allocations, t->large_frees);
  }
}

/* The live free lists' statistics, mapped from the OS as the heaps are. */
struct list_table {
  struct pa_freelist_stats *lists; /* NULL if none, or out of memory */
  size_t count, mapped;
};

static struct list_table lists_gather(void) {
  struct list_table table = {.mapped = _pa_freelists_live()};
  table.lists = table.mapped ? _pa_os_map(table.mapped * sizeof *table.lists) : NULL;
  table.count = table.lists ? _pa_freelists_gather(table.lists, table.mapped) : 0;
  return table;
}

static void lists_release(struct list_table *table) {
  if (table->lists) _pa_os_unmap(table->lists, table->mapped * sizeof *table->lists);
}

static void print_freelists(FILE *out, const struct pa_stats *s) {
  struct list_table table = lists_gather();
  fprintf(out, "free list          domain   size   step sizes max kept       kept          "
               "hits        misses     overflows\n");
  for (size_t i = 0; i < table.count; i++) {
    const struct pa_freelist_stats *l = &table.lists[i];
    fprintf(out, "%-18.18s %-6s %6zu %6zu %5u %8u %10zu %13zu %13zu %13zu\n", l->name,
            domain_names[l->domain], l->size, l->step, l->sizes, l->max_kept, l->kept, l->hits,
            l->misses, l->overflows);
  }
  fprintf(out, "%-18s %-6s %6s %6s %5s %8s %10zu %13zu %13zu %13zu\n", "(all lists)", "", "", "",
          "", "", s->freelists.kept, s->freelists.hits, s->freelists.misses,
          s->freelists.overflows);
  lists_release(&table);
}

void pa_stats_print(FILE *out) {
  struct pa_stats s;
  size_t nheaps;
  struct pa_heap_stats *heaps = heaps_gather(&s, &nheaps);
  fprintf(out, "Small block threshold = %zu, in %zu size classes.\n\n",
          s.small_request_threshold, s.size_classes);
  print_classes(out, s.classes, s.size_classes);
  fputc('\n', out);
  print_arenas(out, &s);
  fputc('\n', out);
  print_bytes(out, &s);
  fputc('\n', out);
  print_line(out, "# pools used", s.pools_used);
  print_line(out, "# pools full", s.pools_full);
  print_line(out, "# thread heaps", s.heaps);
  print_line(out, "# thread heaps abandoned", s.heaps_abandoned);
  fputc('\n', out);
  print_line(out, "# blocks handed out by the pools", s.small_allocations);
  print_line(out, "# blocks given back to the pools", s.small_frees);
  print_line(out, "# peak bytes in arenas", s.arenas_highwater * s.arena_size);
  if (s.raw_allocations != 0) { /* the library build's RAW domain, if used */
    print_line(out, "# raw layer allocations", s.raw_allocations);
    print_line(out, "# raw layer frees", s.raw_frees);
    print_line(out, "# raw layer bytes in use", s.raw_bytes_in_use);
    print_line(out, "# raw layer peak bytes", s.raw_bytes_peak);
  }
  print_line(out, "# large blocks", s.large_blocks);
  print_line(out, "# large bytes in use", s.large_bytes_in_use);
  print_line(out, "# large bytes mapped", s.large_bytes_mapped);
  print_line(out, "# large bytes cached for reuse", s.large_bytes_cached);
  print_line(out, "# large mappings made", s.large_maps);
  print_line(out, "# large requests served from cache", s.large_cache_hits);
  fputc('\n', out);
  print_traffic(out, &s);
  if (s.freelists.lists) {
    fputc('\n', out);
    print_freelists(out, &s);
  }
  if (nheaps) {
    fputc('\n', out);
    print_heaps(out, heaps, nheaps);
  }
  heaps_release(heaps, nheaps);
}

/* ---- For programs: JSON (docs/stats.md) ---------------------------------- */

static void json_classes(FILE *out, const struct pa_class_stats *classes, size_t count) {
  fputs("[", out);
  bool first = true;
  for (size_t cls = 0; cls < count; cls++) {
    const struct pa_class_stats *c = &classes[cls];
    if (c->pools == 0) continue;
    fprintf(out, "%s{\"class\":%zu,\"block_size\":%zu,\"pools\":%zu,\"blocks_in_use\":%zu,"
                 "\"blocks_available\":%zu}",
            first ? "" : ",", cls, c->block_size, c->pools, c->blocks_in_use,
            c->blocks_available);
    first = false;
  }
  fputs("]", out);
}

static void json_heap(FILE *out, const struct pa_heap_stats *h, size_t classes) {
  fprintf(out, "{\"id\":%u,\"thread\":%d,\"handles\":%s,\"pools_used\":%zu,\"pools_full\":%zu,"
               "\"bytes_in_use\":%zu,\"bytes_available\":%zu,"
               "\"bytes_quantization\":%zu,\"small_allocations\":%zu,\"small_frees\":%zu,"
               "\"classes\":",
          h->id, h->thread, h->handles ? "true" : "false", h->pools_used, h->pools_full,
          h->bytes_in_use, h->bytes_available, h->bytes_quantization, h->small_allocations, h->small_frees);
  json_classes(out, h->classes, classes);
  fputs("}", out);
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void json_string(FILE *out, const char *text) {
  fputc('"', out);
  for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
    if (*c == '"' || *c == '\\')
      fprintf(out, "\\%c", *c);
    else if (*c < 0x20)
      fprintf(out, "\\u%04x", *c);
    else
      fputc(*c, out);
  }
  fputc('"', out);
}

static void json_freelists(FILE *out, const struct pa_stats *s) {
  fprintf(out, "\"freelists\":{\"lists\":%zu,\"hits\":%zu,\"misses\":%zu,\"overflows\":%zu,"
               "\"kept\":%zu,\"bytes_kept\":%zu,\"each\":[",
          s->freelists.lists, s->freelists.hits, s->freelists.misses, s->freelists.overflows,
          s->freelists.kept, s->freelists.bytes_kept);
  struct list_table table = lists_gather();
  for (size_t i = 0; i < table.count; i++) {
    const struct pa_freelist_stats *l = &table.lists[i];
    fputs(i ? ",{\"name\":" : "{\"name\":", out);
    json_string(out, l->name);
    fprintf(out, ",\"domain\":\"%s\",\"size\":%zu,\"step\":%zu,\"sizes\":%u,\"max_kept\":%u,"
                 "\"hits\":%zu,\"misses\":%zu,\"overflows\":%zu,\"kept\":%zu,\"bytes_kept\":%zu}",
            domain_names[l->domain], l->size, l->step, l->sizes, l->max_kept, l->hits,
            l->misses, l->overflows, l->kept, l->bytes_kept);
  }
  lists_release(&table);
  fputs("]},", out);
}

void _pa_stats_json_write(FILE *out, const struct pa_stats *s, const struct pa_heap_stats *heaps,
                      size_t nheaps) {
  fprintf(out, "{\"geometry\":{\"alignment\":%zu,\"size_classes\":%zu,"
               "\"small_request_threshold\":%zu,\"large_request_threshold\":%zu,"
               "\"pool_size\":%zu,\"arena_size\":%zu,"
               "\"pool_record_size\":%zu},",
          s->alignment, s->size_classes, s->small_request_threshold,
          s->large_request_threshold, s->pool_size, s->arena_size, s->pool_record_size);
  fprintf(out, "\"arenas\":{\"allocated_total\":%zu,\"released\":%zu,\"highwater\":%zu,"
               "\"current\":%zu},",
          s->arenas_allocated_total, s->arenas_released, s->arenas_highwater,
          s->arenas_current);
  fprintf(out, "\"pools\":{\"used\":%zu,\"full\":%zu,\"empty\":%zu,\"untouched\":%zu},",
          s->pools_used, s->pools_full, s->pools_empty, s->pools_untouched);
  fprintf(out, "\"bytes\":{\"in_use\":%zu,\"available\":%zu,\"empty_pools\":%zu,"
               "\"quantization\":%zu,\"metadata\":%zu,\"rounding\":%zu,"
               "\"rounding_blocks\":%zu},",
          s->bytes_in_use, s->bytes_available, s->bytes_empty_pools, s->bytes_quantization,
          s->bytes_metadata, s->bytes_rounding, s->rounding_blocks);
  fprintf(out, "\"raw\":{\"allocations\":%zu,\"frees\":%zu,\"bytes_in_use\":%zu,"
               "\"bytes_peak\":%zu},",
          s->raw_allocations, s->raw_frees, s->raw_bytes_in_use, s->raw_bytes_peak);
  fprintf(out, "\"large\":{\"blocks\":%zu,\"bytes_in_use\":%zu,\"bytes_mapped\":%zu,"
               "\"bytes_cached\":%zu,\"maps\":%zu,\"cache_hits\":%zu},",
          s->large_blocks, s->large_bytes_in_use, s->large_bytes_mapped, s->large_bytes_cached,
          s->large_maps, s->large_cache_hits);
  json_freelists(out, s);
  fputs("\"domains\":{", out);
  for (int d = 0; d < 3; d++) {
    const struct pa_domain_stats *t = &s->domains[d];
    fprintf(out, "%s\"%s\":{\"small_allocations\":%zu,\"small_frees\":%zu,"
                 "\"large_allocations\":%zu,\"large_frees\":%zu}",
            d ? "," : "", domain_names[d], t->small_allocations, t->small_frees,
            t->large_allocations, t->large_frees);
  }
  fprintf(out, "},\"small_allocations\":%zu,\"small_frees\":%zu,\"heaps_abandoned\":%zu,"
               "\"radix_leaves\":%zu,\"classes\":",
          s->small_allocations, s->small_frees, s->heaps_abandoned, s->radix_leaves);
  json_classes(out, s->classes, s->size_classes);
  fputs(",\"heaps\":[", out);
  for (size_t i = 0; i < nheaps; i++) {
    if (i) fputc(',', out);
    json_heap(out, &heaps[i], s->size_classes);
  }
  fputs("]}", out);
}

int pa_stats_json(FILE *out) {
  struct pa_stats s;
  size_t nheaps;
  struct pa_heap_stats *heaps = heaps_gather(&s, &nheaps);
  if (heaps == NULL && s.heaps > 0) {
    errno = ENOMEM;
    return -1;
  }
  _pa_stats_json_write(out, &s, heaps, nheaps);
  fputc('\n', out);
  heaps_release(heaps, nheaps);
  return ferror(out) ? -1 : 0;
}
