/*
 * Secure mode (-DPOOLALLOC_SECURE=ON): the secrets, the reports, and the
 * shuffling of fresh pools.  The checks themselves are inline, on the fast
 * paths (internal.h: pa_secure_take, pa_secure_free); the guard pages are
 * the arenas' (src/arena.c).
 *
 * What each defence stops:
 *   encoded links      a write through a dangling pointer into a free block
 *                      cannot aim the next allocation at chosen memory: the
 *                      link decodes to an address outside the pool's free
 *                      blocks, and pa_secure_take reports it
 *   handed-out bits    a double free, or a free of an interior or never
 *                      handed-out pointer, is reported at the free, on any
 *                      thread, before the block reaches a free list
 *   header canary      a pool header overwritten from the block before it
 *   random order       a fresh pool's blocks come in an order an overflow
 *                      cannot predict, so its neighbour is not chosen
 *   guard pages        a linear overflow off an arena's end faults
 */
#include <stdlib.h>
#include <string.h>

#include "inline.h"

#if PA_SECURE
struct _pa_secrets _pa_secrets;

/* The keys must be set before the first link is encoded, and never change:
 * called when the options are read (before any allocation) and when the
 * first arena is made, whichever comes first. */
static pthread_once_t secrets_once = PTHREAD_ONCE_INIT;

static void secrets_make(void) {
  uint64_t keys[3];
  if (!_pa_os_random(keys, sizeof keys)) {
    /* No kernel randomness: addresses (randomised by ASLR) and time. */
    keys[0] = (uint64_t)(uintptr_t)&secrets_once ^ _pa_os_monotonic_ms() * 0x9e3779b97f4a7c15u;
    keys[1] = (uint64_t)(uintptr_t)&keys ^ (keys[0] << 17);
    keys[2] = keys[0] * 0xbf58476d1ce4e5b9u ^ keys[1];
  }
  _pa_secrets.link_keys[0] = (uintptr_t)keys[0];
  _pa_secrets.link_keys[1] = (uintptr_t)keys[1];
  _pa_secrets.canary = keys[2];
}

void _pa_secure_init(void) { pthread_once(&secrets_once, secrets_make); }

static const char *const fault_names[] = {
    [PA_FAULT_DOUBLE_FREE] = "double free",
    [PA_FAULT_INVALID_FREE] = "invalid free",
    [PA_FAULT_BAD_HEADER] = "corrupted pool record",
    [PA_FAULT_BAD_FREE_LIST] = "corrupted free list",
};

static const char *const fault_details[] = {
    [PA_FAULT_DOUBLE_FREE] = "the block is already free",
    [PA_FAULT_INVALID_FREE] = "not the start of a block of its pool",
    [PA_FAULT_BAD_HEADER] = "its canary or size class was overwritten",
    [PA_FAULT_BAD_FREE_LIST] = "a free block's link was overwritten (use after free?)",
};

void _pa_secure_fault(enum pa_secure_fault fault, const pa_pool *pool, const void *p) {
  _pa_message("poolalloc: secure: %s of %p (pool %p, blocks of %u bytes): %s; aborting",
             fault_names[fault], p, (const void *)pool, (unsigned)pool->block_size,
             fault_details[fault]);
  abort();
}

static uint64_t heap_random(pa_heap *heap) {
  if (heap->random == 0) heap->random = _pa_secrets.canary ^ (uintptr_t)heap ^ 0x2545f4914f6cdd1du;
  heap->random ^= heap->random >> 12;
  heap->random ^= heap->random << 25;
  heap->random ^= heap->random >> 27;
  return heap->random * 0x2545f4914f6cdd1du;
}

static pa_block *pool_block(pa_pool *pool, uintptr_t index) {
  return (pa_block *)(pool->start + index * pool->block_size);
}

/* Sattolo's algorithm gives a random cyclic permutation of the blocks: each
 * block's first word holds the index of the one after it.  Followed from a
 * random block and cut before it comes round, it is the free list, its
 * indices replaced by encoded links on the way.  No memory beyond the
 * pool's own. */
void _pa_secure_shuffle_pool(pa_pool *pool, pa_heap *owner) {
  uintptr_t n = pa_pool_bytes(pool) / pool->block_size;
  for (uintptr_t i = 0; i < n; i++) {
    track_undefined(pool_block(pool, i), sizeof(pa_block));
    pool_block(pool, i)->next = (pa_block *)i;
  }
  for (uintptr_t i = n - 1; i > 0; i--) {
    uintptr_t j = heap_random(owner) % i;
    pa_block *swap = pool_block(pool, i)->next;
    pool_block(pool, i)->next = pool_block(pool, j)->next;
    pool_block(pool, j)->next = swap;
  }
  uintptr_t first = heap_random(owner) % n, current = first;
  for (uintptr_t k = 1; k < n; k++) {
    uintptr_t next = (uintptr_t)pool_block(pool, current)->next;
    pa_block_set_next(pool_block(pool, current), pool_block(pool, next));
    current = next;
  }
  pa_block_set_next(pool_block(pool, current), NULL);
  pool->free = pool_block(pool, first);
  pool->nextoffset = (uint32_t)pa_pool_last_offset(pool) + 1; /* nothing left to carve */
}
#endif
