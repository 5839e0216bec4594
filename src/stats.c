/*
 * Statistics: a walk over every arena held and every pool carved in it,
 * as CPython's sys._debugmallocstats() does, plus the counters kept by the
 * arena, heap and raw layers.
 */
#include <string.h>

#include "internal.h"

static void stats_add_pool(struct pa_stats *s, const pa_pool *pool) {
  if (pool->state == PA_POOL_EMPTY) {
    s->pools_empty++;
    return;
  }
  struct pa_class_stats *cls = &s->classes[pool->size_class];
  size_t capacity = pa_pool_capacity(pool->block_size);
  cls->pools++;
  cls->blocks_in_use += pool->count;
  cls->blocks_available += capacity - pool->count;
  if (pool->state == PA_POOL_FULL)
    s->pools_full++;
  else
    s->pools_used++;
  s->bytes_in_use += (size_t)pool->count * pool->block_size;
  s->bytes_available += (capacity - pool->count) * pool->block_size;
  s->bytes_pool_headers += PA_POOL_HEADER_SIZE;
  s->bytes_quantization += (PA_POOL_SIZE - PA_POOL_HEADER_SIZE) % pool->block_size;
}

int pa_stats_get(struct pa_stats *s) {
  memset(s, 0, sizeof *s);
  s->alignment = PA_ALIGNMENT;
  s->size_classes = PA_NUM_CLASSES;
  s->small_request_threshold = PA_SMALL_REQUEST_THRESHOLD;
  s->pool_size = PA_POOL_SIZE;
  s->arena_size = PA_ARENA_SIZE;
  s->pool_header_size = PA_POOL_HEADER_SIZE;
  for (unsigned cls = 0; cls < PA_NUM_CLASSES; cls++)
    s->classes[cls].block_size = pa_class_block_size(cls);

  arenas_lock();
  arenas_counters(s);
  for (pa_arena *arena = arenas_first(); arena; arena = arena->all_next) {
    for (uintptr_t at = arena->base; at < arena->pool_address; at += PA_POOL_SIZE)
      stats_add_pool(s, (const pa_pool *)at);
    s->pools_untouched += (arena->base + PA_ARENA_SIZE - arena->pool_address) / PA_POOL_SIZE;
  }
  s->radix_leaves = radix_leaves();
  arenas_unlock();
  s->bytes_empty_pools = (s->pools_empty + s->pools_untouched) * PA_POOL_SIZE;
  heaps_counters(s);
  raw_counters(s);
  return 0;
}

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

void pa_stats_print(FILE *out) {
  struct pa_stats s;
  pa_stats_get(&s);
  fprintf(out, "Small block threshold = %zu, in %zu size classes.\n\n",
          s.small_request_threshold, s.size_classes);
  fprintf(out, "class   size   num pools   blocks in use  avail blocks\n"
               "-----   ----   ---------   -------------  ------------\n");
  for (size_t cls = 0; cls < s.size_classes; cls++) {
    const struct pa_class_stats *c = &s.classes[cls];
    if (c->pools == 0) continue;
    fprintf(out, "%5zu %6zu %11zu %15zu %13zu\n", cls, c->block_size, c->pools,
            c->blocks_in_use, c->blocks_available);
  }
  fputc('\n', out);
  print_line(out, "# arenas allocated total", s.arenas_allocated_total);
  print_line(out, "# arenas reclaimed", s.arenas_released);
  print_line(out, "# arenas highwater mark", s.arenas_highwater);
  print_line(out, "# arenas allocated current", s.arenas_current);
  char label[64];
  snprintf(label, sizeof label, "%zu arenas * %zu bytes/arena", s.arenas_current, s.arena_size);
  print_line(out, label, s.arenas_current * s.arena_size);
  fputc('\n', out);
  print_line(out, "# bytes in allocated blocks", s.bytes_in_use);
  print_line(out, "# bytes in available blocks", s.bytes_available);
  snprintf(label, sizeof label, "%zu unused pools * %zu bytes", s.pools_empty + s.pools_untouched,
           s.pool_size);
  print_line(out, label, s.bytes_empty_pools);
  print_line(out, "# bytes lost to pool headers", s.bytes_pool_headers);
  print_line(out, "# bytes lost to quantization", s.bytes_quantization);
  print_line(out, "Total", s.bytes_in_use + s.bytes_available + s.bytes_empty_pools +
                               s.bytes_pool_headers + s.bytes_quantization);
  fputc('\n', out);
  print_line(out, "# pools used", s.pools_used);
  print_line(out, "# pools full", s.pools_full);
  print_line(out, "# thread heaps", s.heaps);
  print_line(out, "# thread heaps abandoned", s.heaps_abandoned);
  fputc('\n', out);
  print_line(out, "# blocks handed out by the pools", s.small_allocations);
  print_line(out, "# peak bytes in arenas", s.arenas_highwater * s.arena_size);
  print_line(out, "# raw layer allocations", s.raw_allocations);
  print_line(out, "# raw layer frees", s.raw_frees);
  print_line(out, "# raw layer bytes in use", s.raw_bytes_in_use);
  print_line(out, "# raw layer peak bytes", s.raw_bytes_peak);
}
