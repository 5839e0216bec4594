/*
 * The public entry points of every domain, in one place above the general
 * allocator: pa_malloc and friends (MEM), pa_mem_*, pa_obj_* and pa_raw_*.
 * The override (src/override.c) gives the C library's names to these.
 *
 *   pa_malloc(n):  n in 1..512 -> the domain's size class -> the calling
 *                  thread's first used pool of that class -> pop its free
 *                  list or carve a virgin block (src/inline.h); an
 *                  exhausted pool takes the heap's slow path.  Other sizes,
 *                  and every call while a layer is on top of the default
 *                  (src/domain.c), take the domain's chain.
 *   pa_free(p):    the block query -> not ours: the domain's chain (RAW, or
 *                  the layer on top); ours: its pool, in place by the owner
 *                  or pushed onto the pool's remote list (src/heap.c).
 *
 * The process's first call through any of them starts it (src/start.c):
 * until then the fast limits are 0, so every call reaches the layer lookup
 * here, which starts the process first.
 */
#include <errno.h>

#include "inline.h"

static const pa_layer *domain_layer(pa_domain domain) {
  if (__builtin_expect(!_pa_domains_opened(), 0)) _pa_start();
  return _pa_domain_layer(domain);
}

/* The inline fast paths declined: a size they do not serve, a pointer not
 * in the arenas, or a layer on top of the default.  Kept out of line: the
 * entry points here would otherwise carry the slow path's frame. */
PA_ENTRY __attribute__((noinline)) void *_pa_entry_malloc(size_t size, pa_domain domain) {
  const pa_layer *layer = domain_layer(domain);
  if (_pa_domain_is_default(layer, domain)) return _pa_general_malloc(size, domain);
  return layer->api.malloc(layer->api.ctx, size);
}

PA_ENTRY __attribute__((noinline)) void _pa_entry_free(void *p, pa_domain domain) {
  const pa_layer *layer = domain_layer(domain);
  if (_pa_domain_is_default(layer, domain))
    _pa_general_free(p, domain);
  else
    layer->api.free(layer->api.ctx, p);
}

/* The default layer is called directly, the others through the chain. */
PA_ENTRY static void *domain_calloc(pa_domain domain, size_t count, size_t size) {
  const pa_layer *layer = domain_layer(domain);
  if (domain != PA_DOMAIN_RAW && _pa_domain_is_default(layer, domain))
    return _pa_general_calloc(count, size, domain);
  return layer->api.calloc(layer->api.ctx, count, size);
}

PA_ENTRY static void *domain_realloc(pa_domain domain, void *p, size_t size) {
  const pa_layer *layer = domain_layer(domain);
  if (domain != PA_DOMAIN_RAW && _pa_domain_is_default(layer, domain))
    return _pa_general_realloc(p, size, domain);
  return layer->api.realloc(layer->api.ctx, p, size);
}

PA_ENTRY void *pa_raw_malloc(size_t size) {
  const pa_layer *layer = domain_layer(PA_DOMAIN_RAW);
  return layer->api.malloc(layer->api.ctx, size);
}
PA_ENTRY void *pa_raw_calloc(size_t count, size_t size) {
  return domain_calloc(PA_DOMAIN_RAW, count, size);
}
PA_ENTRY void *pa_raw_realloc(void *p, size_t size) { return domain_realloc(PA_DOMAIN_RAW, p, size); }
PA_ENTRY void pa_raw_free(void *p) {
  const pa_layer *layer = domain_layer(PA_DOMAIN_RAW);
  layer->api.free(layer->api.ctx, p);
}

PA_ENTRY void *pa_mem_malloc(size_t size) { return pa_malloc_fast(PA_DOMAIN_MEM, size); }
PA_ENTRY void *pa_mem_calloc(size_t count, size_t size) {
  return domain_calloc(PA_DOMAIN_MEM, count, size);
}
PA_ENTRY void *pa_mem_realloc(void *p, size_t size) { return domain_realloc(PA_DOMAIN_MEM, p, size); }
PA_ENTRY void pa_mem_free(void *p) { pa_free_fast(PA_DOMAIN_MEM, p); }

PA_ENTRY void *pa_obj_malloc(size_t size) { return pa_malloc_fast(PA_DOMAIN_OBJ, size); }
PA_ENTRY void *pa_obj_calloc(size_t count, size_t size) {
  return domain_calloc(PA_DOMAIN_OBJ, count, size);
}
PA_ENTRY void *pa_obj_realloc(void *p, size_t size) { return domain_realloc(PA_DOMAIN_OBJ, p, size); }
PA_ENTRY void pa_obj_free(void *p) { pa_free_fast(PA_DOMAIN_OBJ, p); }

/* pa_malloc and friends are the MEM domain. */
PA_ENTRY void *pa_malloc(size_t size) { return pa_malloc_fast(PA_DOMAIN_MEM, size); }
PA_ENTRY void pa_free(void *p) { pa_free_fast(PA_DOMAIN_MEM, p); }
PA_ENTRY void *pa_calloc(size_t count, size_t size) { return domain_calloc(PA_DOMAIN_MEM, count, size); }
PA_ENTRY void *pa_realloc(void *p, size_t size) { return domain_realloc(PA_DOMAIN_MEM, p, size); }

PA_ENTRY size_t pa_usable_size(const void *p) {
  const pa_layer *layer = domain_layer(PA_DOMAIN_MEM);
  if (_pa_domain_is_default(layer, PA_DOMAIN_MEM)) return _pa_general_usable_size(p);
  return _pa_layer_usable_size(layer, p);
}

PA_ENTRY void *pa_aligned_alloc(size_t alignment, size_t size) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    errno = EINVAL;
    return NULL;
  }
  const pa_layer *layer = domain_layer(PA_DOMAIN_MEM);
  if (_pa_domain_is_default(layer, PA_DOMAIN_MEM)) return _pa_general_aligned(alignment, size, PA_DOMAIN_MEM);
  return _pa_layer_aligned(layer, alignment, size);
}

PA_ENTRY int pa_posix_memalign(void **out, size_t alignment, size_t size) {
  if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
  int saved = errno;
  void *p = pa_aligned_alloc(alignment, size);
  if (p == NULL) {
    errno = saved;
    return ENOMEM;
  }
  *out = p;
  return 0;
}

static bool domain_valid(pa_domain domain) { return (unsigned)domain <= PA_DOMAIN_OBJ; }

int pa_get_allocator(pa_domain domain, pa_allocator *out) {
  if (!domain_valid(domain) || out == NULL) {
    errno = EINVAL;
    return -1;
  }
  *out = domain_layer(domain)->api;
  return 0;
}

int pa_set_allocator(pa_domain domain, const pa_allocator *allocator) {
  if (!domain_valid(domain) || allocator == NULL || !allocator->malloc || !allocator->calloc ||
      !allocator->realloc || !allocator->free) {
    errno = EINVAL;
    return -1;
  }
  _pa_start(); /* the options first: the layers they ask for go below this one */
  return _pa_domain_set(domain, allocator);
}
