/*
 * Domains: which allocator serves a request.  The path of every request:
 *
 *   pa_raw_*                  -> RAW's allocator: the raw layer (src/raw.c,
 *                                the C library's malloc); under the
 *                                override, the general allocator
 *   pa_mem_* / pa_malloc ...  -> MEM's allocator: the general allocator
 *   pa_obj_*                  -> OBJ's allocator: the general allocator
 *   malloc ... (override)     -> as pa_mem_*
 *
 *   general allocator (src/alloc.c), by size:
 *     1..512 bytes  -> a block of the calling thread's pools (0 counts as 1)
 *     513 bytes to a quarter of an arena
 *                   -> a block of a run of pools (medium classes)
 *     larger, or aligned past a pool
 *                   -> a mapping of its own (src/large.c)
 *
 * Each domain has a chain of layers: the default at the bottom, then
 * whatever was set on top (a user's pa_set_allocator, the debug hooks,
 * tracing), each calling the one below.  While only defaults serve MEM and
 * OBJ, the inline fast paths run; anything on top lowers the fast limits
 * (types.h) so every call goes through the entry points' dispatch
 * (src/api.c), which asks here for the layer on top.
 *
 * The options are read, and the layers they ask for installed, by the first
 * call through an entry point (src/start.c): until then the fast limits are
 * 0.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

struct pa_fast_limits _pa_fast; /* 0 until the options are read */

#ifndef POOLALLOC_OVERRIDE
static void *raw_layer_malloc(void *ctx, size_t size) {
  (void)ctx;
  return _pa_raw_malloc(size);
}
static void *raw_layer_calloc(void *ctx, size_t count, size_t size) {
  (void)ctx;
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return _pa_raw_calloc(count, size);
}
static void *raw_layer_realloc(void *ctx, void *p, size_t size) {
  (void)ctx;
  return p ? _pa_raw_realloc(p, size) : _pa_raw_malloc(size);
}
static void raw_layer_free(void *ctx, void *p) {
  (void)ctx;
  if (p) _pa_raw_free(p);
}
static void *raw_layer_aligned(void *ctx, size_t alignment, size_t size) {
  (void)ctx;
  return _pa_raw_aligned(alignment, size);
}
static size_t raw_layer_usable_size(void *ctx, const void *p) {
  (void)ctx;
  return p ? _pa_raw_usable_size(p) : 0;
}
#endif

/* The general layer's ctx is the domain it serves, so its traffic is
 * counted where it belongs. */
static pa_domain ctx_domain(void *ctx) { return (pa_domain)(uintptr_t)ctx; }

static void *general_layer_malloc(void *ctx, size_t size) {
  return _pa_general_malloc(size, ctx_domain(ctx));
}
static void *general_layer_calloc(void *ctx, size_t count, size_t size) {
  return _pa_general_calloc(count, size, ctx_domain(ctx));
}
static void *general_layer_realloc(void *ctx, void *p, size_t size) {
  return _pa_general_realloc(p, size, ctx_domain(ctx));
}
static void general_layer_free(void *ctx, void *p) { _pa_general_free(p, ctx_domain(ctx)); }
static void *general_layer_aligned(void *ctx, size_t alignment, size_t size) {
  return _pa_general_aligned(alignment, size, ctx_domain(ctx));
}
static size_t general_layer_usable_size(void *ctx, const void *p) {
  (void)ctx;
  return _pa_general_usable_size(p);
}

#define GENERAL_LAYER(domain)                                                             \
  {{(void *)(uintptr_t)(domain), general_layer_malloc, general_layer_calloc, general_layer_realloc,             \
    general_layer_free},                                                                  \
   general_layer_aligned, general_layer_usable_size, NULL}

static const pa_layer default_layers[3] = {
#ifdef POOLALLOC_OVERRIDE
    [PA_DOMAIN_RAW] = GENERAL_LAYER(PA_DOMAIN_RAW),
#else
    [PA_DOMAIN_RAW] = {{NULL, raw_layer_malloc, raw_layer_calloc, raw_layer_realloc,
                        raw_layer_free},
                       raw_layer_aligned, raw_layer_usable_size, NULL},
#endif
    [PA_DOMAIN_MEM] = GENERAL_LAYER(PA_DOMAIN_MEM),
    [PA_DOMAIN_OBJ] = GENERAL_LAYER(PA_DOMAIN_OBJ),
};

static struct {
  pthread_mutex_t lock; /* serialises changes to the chains */
  atomic_bool open;     /* the process has started (src/start.c) */
  _Atomic(const pa_layer *) current[3];
} domains = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .current = {&default_layers[0], &default_layers[1], &default_layers[2]},
};

void _pa_domains_lock(void) { pthread_mutex_lock(&domains.lock); }
void _pa_domains_unlock(void) { pthread_mutex_unlock(&domains.lock); }

static const pa_layer *current_layer(pa_domain domain) {
  return atomic_load_explicit(&domains.current[domain], memory_order_acquire);
}

static void fast_limits_update(void) {
  bool open = atomic_load_explicit(&domains.open, memory_order_acquire) &&
              current_layer(PA_DOMAIN_MEM) == &default_layers[PA_DOMAIN_MEM] &&
              current_layer(PA_DOMAIN_OBJ) == &default_layers[PA_DOMAIN_OBJ];
  atomic_store_explicit(&_pa_fast.small_request, open ? PA_SMALL_REQUEST_THRESHOLD : 0,
                        memory_order_relaxed);
  _pa_radix_open_free_path(open);
}

void _pa_domains_open(void) {
  pthread_mutex_lock(&domains.lock);
  atomic_store_explicit(&domains.open, true, memory_order_release);
  fast_limits_update();
  pthread_mutex_unlock(&domains.lock);
}

/* Until the process has started (src/start.c) the fast limits are 0, and
 * the entry points (src/api.c) start it before they ask for a layer. */
bool _pa_domains_opened(void) { return atomic_load_explicit(&domains.open, memory_order_acquire); }

const pa_layer *_pa_domain_layer(pa_domain domain) { return current_layer(domain); }

bool _pa_domain_is_default(const pa_layer *layer, pa_domain domain) {
  return layer == &default_layers[domain];
}

PA_ENTRY void *_pa_layer_aligned(const pa_layer *layer, size_t alignment, size_t size) {
  while (layer->aligned == NULL) layer = layer->below;
  return layer->aligned(layer->api.ctx, alignment, size);
}

size_t _pa_layer_usable_size(const pa_layer *layer, const void *p) {
  while (layer->usable_size == NULL) layer = layer->below;
  return layer->usable_size(layer->api.ctx, p);
}

void _pa_domains_push(pa_layer layers[3], const pa_layer *functions) {
  pthread_mutex_lock(&domains.lock);
  for (int d = 0; d < 3; d++) {
    layers[d] = *functions;
    layers[d].api.ctx = &layers[d];
    layers[d].below = current_layer(d);
    atomic_store_explicit(&domains.current[d], &layers[d], memory_order_release);
  }
  fast_limits_update();
  pthread_mutex_unlock(&domains.lock);
}

void _pa_domains_remove(const pa_layer layers[3]) {
  pthread_mutex_lock(&domains.lock);
  bool on_top = true;
  for (int d = 0; d < 3; d++) on_top &= current_layer(d) == &layers[d];
  if (on_top) {
    for (int d = 0; d < 3; d++)
      atomic_store_explicit(&domains.current[d], layers[d].below, memory_order_release);
    fast_limits_update();
  }
  pthread_mutex_unlock(&domains.lock);
}

bool _pa_allocations_served(void) {
  struct pa_stats counters = {0};
  _pa_arenas_counters(&counters);
  _pa_raw_counters(&counters);
  _pa_large_counters(&counters);
  return counters.arenas_allocated_total > 0 || counters.raw_allocations > 0 ||
         counters.large_maps > 0;
}

bool _pa_domains_contain(const pa_layer *layer, pa_domain domain) {
  for (const pa_layer *at = current_layer(domain); at; at = at->below)
    if (at == layer) return true;
  return false;
}

/* An allocator already in the chain (one pa_get_allocator returned) is put
 * back on top, which drops the layers above it; any other gets a new layer
 * record (never freed: a handful per program). */
int _pa_domain_set(pa_domain domain, const pa_allocator *allocator) {
  pthread_mutex_lock(&domains.lock);
  const pa_layer *top = current_layer(domain);
  const pa_layer *found = top;
  while (found && memcmp(&found->api, allocator, sizeof *allocator) != 0) found = found->below;
  if (found == NULL) {
    pa_layer *fresh = _pa_meta_alloc(sizeof *fresh);
    if (fresh == NULL) {
      pthread_mutex_unlock(&domains.lock);
      errno = ENOMEM;
      return -1;
    }
    *fresh = (pa_layer){.api = *allocator, .below = top};
    found = fresh;
  }
  atomic_store_explicit(&domains.current[domain], found, memory_order_release);
  fast_limits_update();
  pthread_mutex_unlock(&domains.lock);
  return 0;
}
