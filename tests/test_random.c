/* A long random sequence of malloc, calloc, realloc and free of random
 * sizes over the whole range (small, medium and large blocks, across every
 * layer boundary), checked against a model: every live block carries a pattern derived
 * from its own seed, verified before every realloc and free.  At the end,
 * the statistics must show nothing in use and nothing held. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "inline.h"

#define SLOTS 2000

struct slot {
  unsigned char *p;
  size_t size;
  unsigned char seed;
};

static void paint(struct slot *s) {
  for (size_t i = 0; i < s->size; i++) s->p[i] = (unsigned char)(s->seed + i);
}
static bool intact(const struct slot *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s->p[i] != (unsigned char)(s->seed + i)) return false;
  return true;
}

static size_t random_size(unsigned long long *rng) {
  unsigned long long r = check_random(rng);
  if (r % 200 == 0) return PA_LARGE_REQUEST_THRESHOLD - 64 + (r >> 40) % (512 << 10); /* large */
  switch (r % 10) {
  case 0: return r >> 40 & 4095;          /* medium, sometimes 0 */
  case 1: return 500 + (r >> 40) % 30;    /* around the small threshold */
  case 2: return 513 + (r >> 40) % PA_LARGE_REQUEST_THRESHOLD; /* any medium */
  default: return 1 + (r >> 40) % 128;    /* mostly small */
  }
}

int main(void) {
  static struct slot slots[SLOTS];
  unsigned long long rng = 0x9e3779b97f4a7c15ULL;
  long operations = getenv("POOLALLOC_TEST_SMALL") ? 60000 : 600000;
  long corrupt = 0, failed = 0;
  for (long op = 0; op < operations; op++) {
    struct slot *s = &slots[check_random(&rng) % SLOTS];
    unsigned kind = check_random(&rng) % 4;
    if (s->p == NULL) {
      s->size = random_size(&rng);
      s->seed = (unsigned char)op;
      s->p = kind == 0 ? pa_calloc(1, s->size) : pa_malloc(s->size);
      if (s->p == NULL) { failed++; continue; }
      if (kind == 0)
        for (size_t i = 0; i < s->size; i++) corrupt += s->p[i] != 0;
      paint(s);
    } else if (kind == 1) {
      size_t size = random_size(&rng);
      size_t kept = size < s->size ? size : s->size;
      if (!intact(s, s->size)) corrupt++;
      unsigned char *q = pa_realloc(s->p, size);
      if (size == 0) { s->p = NULL; continue; } /* realloc(p, 0) freed it */
      if (q == NULL) { failed++; continue; }
      s->p = q;
      if (!intact(s, kept)) corrupt++;
      s->size = size;
      paint(s);
    } else {
      if (!intact(s, s->size)) corrupt++;
      if (pa_usable_size(s->p) < s->size) corrupt++;
      pa_free(s->p);
      s->p = NULL;
    }
  }
  CHECK_EQ(corrupt, 0);
  CHECK_EQ(failed, 0);

  struct pa_stats mid;
  pa_stats_get(&mid);
  size_t live_pooled = 0, live_large = 0;
  for (int i = 0; i < SLOTS; i++)
    if (slots[i].p) *(pa_arena_of(slots[i].p)->large_size ? &live_large : &live_pooled) += 1;
  size_t counted = 0;
  for (size_t c = 0; c < mid.size_classes; c++) counted += mid.classes[c].blocks_in_use;
  CHECK_EQ(counted, live_pooled);
  CHECK_EQ(mid.large_blocks, live_large);
  CHECK(live_large > 0);
  CHECK_EQ(mid.raw_allocations, mid.raw_frees);
  CHECK_EQ(mid.bytes_in_use + mid.bytes_available + mid.bytes_empty_pools +
               mid.bytes_quantization,
           mid.arenas_current * mid.arena_size);

  for (int i = 0; i < SLOTS; i++) {
    if (slots[i].p && !intact(&slots[i], slots[i].size)) corrupt++;
    pa_free(slots[i].p);
  }
  CHECK_EQ(corrupt, 0);
  pa_collect();
  struct pa_stats end;
  pa_stats_get(&end);
  CHECK_EQ(end.bytes_in_use, 0);
  CHECK_EQ(end.arenas_current, 0);
  CHECK_EQ(end.large_blocks, 0);
  CHECK_EQ(end.large_bytes_cached, 0);
  return check_done();
}
