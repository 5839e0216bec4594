/* The soak test: more threads than cores allocate blocks of every kind
 * (pool sizes, large, aligned, calloc, realloc), fill them with a pattern,
 * pass some to other threads through mailboxes and free what they are sent,
 * for a bounded time (POOLALLOC_SOAK_SECONDS, 3 by default).  Threads exit
 * all along, leaving blocks in mailboxes to be freed into their abandoned
 * heaps, and new ones take their places.  Every block's pattern is checked
 * when it is freed.  At the end every counter is back to zero, every arena
 * is released, and the resident set is back within a small margin of where
 * it started.  Runs under TSan in the sanitizer builds. */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "internal.h"

enum {
  THREADS = 16,      /* at once: more than the cores of the machines we run on */
  KEPT = 256,        /* blocks a worker holds */
  MAILBOX = 1024,    /* blocks waiting for one worker slot */
  MAX_OPS = 8000,    /* a worker's life, at most (plus 1000) */
};

/* Every block starts with its size and a seed; the bytes after follow from
 * the seed. */
struct block_head {
  uint32_t size;
  uint32_t seed;
};

struct mailbox {
  pthread_mutex_t lock;
  size_t count;
  struct block_head *items[MAILBOX];
};

struct worker {
  pthread_t thread;
  unsigned slot;
  unsigned long long random;
  atomic_bool done;
  long corrupt;
};

static struct mailbox mailboxes[THREADS];
static struct worker workers[THREADS];
static atomic_bool stopping;
static atomic_long corrupt_total;

static unsigned char pattern_byte(uint32_t seed, size_t i) {
  return (unsigned char)(seed + i * 31);
}

static void fill(struct block_head *b, size_t size, uint32_t seed) {
  b->size = (uint32_t)size;
  b->seed = seed;
  unsigned char *bytes = (unsigned char *)b;
  for (size_t i = sizeof *b; i < size; i++) bytes[i] = pattern_byte(seed, i);
}

static bool intact(const struct block_head *b) {
  const unsigned char *bytes = (const unsigned char *)b;
  for (size_t i = sizeof *b; i < b->size; i++)
    if (bytes[i] != pattern_byte(b->seed, i)) return false;
  return pa_usable_size(b) >= b->size;
}

static void release(struct worker *w, struct block_head *b) {
  if (!intact(b)) w->corrupt++;
  pa_free(b);
}

static struct block_head *make_block(struct worker *w) {
  unsigned long long r = check_random(&w->random);
  size_t size = sizeof(struct block_head) + r % 505; /* pool sizes, mostly */
  struct block_head *b;
  switch ((r >> 20) % 16) {
  case 0:
    size = 513 + (r >> 32) % 32768;
    b = pa_malloc(size);
    break;
  case 1:
    b = pa_aligned_alloc((size_t)64 << ((r >> 32) % 6), size);
    break;
  case 2:
    b = pa_calloc(1, size);
    if (b && ((unsigned char *)b)[size - 1] != 0) w->corrupt++;
    break;
  default:
    b = pa_malloc(size);
  }
  if (b) fill(b, size, (uint32_t)(r >> 8));
  return b;
}

/* Resizes a block, checking that the bytes that stay are kept. */
static struct block_head *resize(struct worker *w, struct block_head *b) {
  if (!intact(b)) w->corrupt++;
  size_t old_size = b->size, size = sizeof *b + check_random(&w->random) % 2000;
  uint32_t seed = b->seed;
  struct block_head *moved = pa_realloc(b, size);
  if (moved == NULL) return b;
  const unsigned char *bytes = (const unsigned char *)moved;
  size_t kept = old_size < size ? old_size : size;
  for (size_t i = sizeof *moved; i < kept; i++)
    if (bytes[i] != pattern_byte(seed, i)) {
      w->corrupt++;
      break;
    }
  fill(moved, size, seed + 1);
  return moved;
}

static bool post(unsigned slot, struct block_head *b) {
  struct mailbox *box = &mailboxes[slot];
  pthread_mutex_lock(&box->lock);
  bool room = box->count < MAILBOX;
  if (room) box->items[box->count++] = b;
  pthread_mutex_unlock(&box->lock);
  return room;
}

static void drain(struct worker *w, unsigned slot) {
  struct mailbox *box = &mailboxes[slot];
  pthread_mutex_lock(&box->lock);
  size_t count = box->count;
  box->count = 0;
  for (size_t i = 0; i < count; i++) release(w, box->items[i]);
  pthread_mutex_unlock(&box->lock);
}

/* Keeps up to KEPT blocks; frees, passes on, resizes and receives them at
 * random, then leaves, passing half of what it holds to others. */
static void *worker_main(void *arg) {
  struct worker *w = arg;
  struct block_head *kept[KEPT] = {0};
  long ops = 1000 + (long)(check_random(&w->random) % MAX_OPS);
  for (long op = 0; op < ops && !atomic_load(&stopping); op++) {
    unsigned long long r = check_random(&w->random);
    struct block_head **b = &kept[(r >> 8) % KEPT];
    switch (r % 8) {
    case 0: case 1: case 2:
      if (*b) release(w, *b);
      *b = make_block(w);
      break;
    case 3:
      if (*b) release(w, *b);
      *b = NULL;
      break;
    case 4: case 5:
      if (*b && post((unsigned)((r >> 32) % THREADS), *b)) *b = NULL;
      break;
    case 6:
      drain(w, w->slot);
      break;
    default:
      if (*b) *b = resize(w, *b);
    }
  }
  drain(w, w->slot);
  for (unsigned i = 0; i < KEPT; i++) {
    if (kept[i] == NULL) continue;
    if (i % 2 && post((unsigned)(check_random(&w->random) % THREADS), kept[i])) continue;
    release(w, kept[i]);
  }
  atomic_fetch_add(&corrupt_total, w->corrupt);
  atomic_store(&w->done, true);
  return NULL;
}

static void start(unsigned slot, unsigned long long seed) {
  struct worker *w = &workers[slot];
  w->slot = slot;
  w->random = seed | 1;
  w->corrupt = 0;
  atomic_store(&w->done, false);
  if (pthread_create(&w->thread, NULL, worker_main, w) != 0) abort();
}

int main(void) {
  const char *seconds_text = getenv("POOLALLOC_SOAK_SECONDS");
  uint64_t seconds = seconds_text ? strtoull(seconds_text, NULL, 10) : 3;
  size_t rss_start = _pa_os_resident_bytes(), rss_peak = rss_start;
  for (unsigned i = 0; i < THREADS; i++) pthread_mutex_init(&mailboxes[i].lock, NULL);

  unsigned long long seed = 0x5eed;
  for (unsigned i = 0; i < THREADS; i++) start(i, check_random(&seed));
  size_t threads = THREADS;
  uint64_t deadline = _pa_os_monotonic_ms() + seconds * 1000;
  while (_pa_os_monotonic_ms() < deadline) {
    for (unsigned i = 0; i < THREADS; i++)
      if (atomic_load(&workers[i].done)) {
        pthread_join(workers[i].thread, NULL);
        start(i, check_random(&seed));
        threads++;
      }
    size_t rss = _pa_os_resident_bytes();
    if (rss > rss_peak) rss_peak = rss;
    struct timespec pause = {0, 1000000};
    nanosleep(&pause, NULL);
  }
  atomic_store(&stopping, true);
  for (unsigned i = 0; i < THREADS; i++) pthread_join(workers[i].thread, NULL);
  struct worker last = {.random = 1};
  for (unsigned i = 0; i < THREADS; i++) drain(&last, i); /* into abandoned heaps */
  CHECK_EQ(atomic_load(&corrupt_total) + last.corrupt, 0);
  CHECK(threads >= 2 * THREADS); /* threads came and went all along */

  pa_collect();
  struct pa_stats s;
  pa_stats_get(&s);
  CHECK_EQ(check_pool_blocks_in_use(), 0);
  CHECK_EQ(s.bytes_in_use, 0);
  CHECK_EQ(s.small_allocations, s.small_frees);
  CHECK_EQ(s.raw_allocations, s.raw_frees);
  CHECK_EQ(s.raw_bytes_in_use, 0);
  CHECK_EQ(s.pools_used + s.pools_full, 0);
  CHECK_EQ(s.arenas_current, 0);
  /* every worker gave its heap up; this thread took one when it freed
   * their blocks (it counts its frees there) */
  CHECK_EQ(s.heaps_abandoned + 1, s.heaps);
  CHECK(s.arenas_highwater > 0);

  /* Large blocks come from the C library's malloc in this build: trim it so
   * the figure is poolalloc's.  What stays (about 3 MiB here, the same after
   * 1 s or 10 s) is the C library's per-thread heaps and cached thread
   * stacks.  Sanitizers keep shadow memory: no figure then. */
  malloc_trim(0);
  size_t rss_end = _pa_os_resident_bytes();
  printf("%zu threads over %llu s; RSS %zu KiB at start, %zu KiB at peak, %zu KiB at end\n",
         threads, (unsigned long long)seconds, rss_start >> 10, rss_peak >> 10, rss_end >> 10);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  CHECK(rss_end <= rss_start + 4 * 1024 * 1024);
#endif
  return check_done();
}
