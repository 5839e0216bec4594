/*
 * Records for the allocator's own bookkeeping (thread heaps, arena records).
 * They come from the OS in chunks, never from malloc (which may be us), and
 * are never freed: their owners recycle them.
 */

#include "internal.h"

#define META_CHUNK_SIZE (64 * 1024)

static struct {
  pthread_mutex_t lock;
  char *cursor; /* next free byte in the current chunk */
  size_t left;  /* bytes left in it */
  size_t mapped; /* chunks mapped, in bytes */
} meta = {.lock = PTHREAD_MUTEX_INITIALIZER};

void _pa_meta_lock(void) { pthread_mutex_lock(&meta.lock); }
void _pa_meta_unlock(void) { pthread_mutex_unlock(&meta.lock); }

size_t _pa_meta_mapped(void) {
  pthread_mutex_lock(&meta.lock);
  size_t mapped = meta.mapped;
  pthread_mutex_unlock(&meta.lock);
  return mapped;
}

/* Zeroed, 64-byte aligned (a cache line: heaps of different threads never
 * share one). */
void *_pa_meta_alloc(size_t size) {
  size = (size + 63) & ~(size_t)63;
  if (size > META_CHUNK_SIZE) return NULL;
  pthread_mutex_lock(&meta.lock);
  if (meta.left < size) {
    char *chunk = _pa_os_map(META_CHUNK_SIZE);
    if (chunk == NULL) {
      pthread_mutex_unlock(&meta.lock);
      return NULL;
    }
    meta.cursor = chunk;
    meta.left = META_CHUNK_SIZE;
    meta.mapped += META_CHUNK_SIZE;
  }
  void *record = meta.cursor;
  meta.cursor += size;
  meta.left -= size;
  pthread_mutex_unlock(&meta.lock);
  return record; /* fresh mapping: already zero */
}
