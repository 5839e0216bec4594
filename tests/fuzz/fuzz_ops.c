/* A libFuzzer target: the input is a sequence of operations on 64 slots
 * (malloc, calloc, realloc, aligned allocation, free, OBJ-domain calls, a
 * free list's alloc and free, a handle table's alloc, free, pin, unpin and
 * compaction, frees on a helper thread, pa_collect), each checked against a
 * model: every block keeps the pattern written into it, its usable size
 * covers the request, its alignment is what was asked; calloc's bytes are
 * zero; realloc keeps the prefix.  At the end of each input everything is
 * freed and the statistics must show nothing in use.
 *
 * Built with clang -fsanitize=fuzzer,address,undefined (make fuzz); built
 * with tests/fuzz/replay.c instead, it replays the seed corpus in every
 * build (the fuzz_corpus test).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum { SLOTS = 64, FREELIST_SIZES = 8, FREELIST_STEP = 24 };

enum kind { EMPTY, BLOCK, OBJ_BLOCK, KEPT, HANDLE };

struct slot {
  enum kind kind;
  unsigned char *p;  /* BLOCK, OBJ_BLOCK, KEPT */
  pa_handle handle;  /* HANDLE */
  unsigned index;    /* KEPT: the free list index */
  size_t size;
  unsigned char seed;
};

static struct slot slots[SLOTS];
static pa_freelist *list;
static pa_handles *table;

/* The helper thread frees what it is handed, while the fuzzer waits. */
static struct {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  void *pending;
  pthread_t thread;
  bool started;
} helper = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, false};

static void *helper_main(void *unused) {
  (void)unused;
  pthread_mutex_lock(&helper.lock);
  for (;;) {
    while (helper.pending == NULL) pthread_cond_wait(&helper.changed, &helper.lock);
    pa_free(helper.pending);
    helper.pending = NULL;
    pthread_cond_broadcast(&helper.changed);
  }
  return NULL;
}

static void free_on_helper(void *p) {
  pthread_mutex_lock(&helper.lock);
  helper.pending = p;
  pthread_cond_broadcast(&helper.changed);
  while (helper.pending != NULL) pthread_cond_wait(&helper.changed, &helper.lock);
  pthread_mutex_unlock(&helper.lock);
}

/* The input, read a byte at a time; zeros once it runs out. */
struct input {
  const uint8_t *data;
  size_t size, at;
};

static unsigned byte(struct input *in) { return in->at < in->size ? in->data[in->at++] : 0; }
static unsigned word(struct input *in) { return byte(in) | byte(in) << 8; }

__attribute__((noreturn)) static void model_broken(const char *what, const struct slot *s) {
  fprintf(stderr, "fuzz_ops: %s (slot size %zu, seed %u, kind %d)\n", what, s->size, s->seed, s->kind);
  abort();
}

static unsigned char *slot_bytes(struct slot *s) {
  return s->kind == HANDLE ? pa_handle_get(table, s->handle) : s->p;
}

/* The bytes of a block of seed s are pattern[s ..]: memcpy and memcmp,
 * which coverage instrumentation leaves alone, instead of a loop it would
 * slow down tenfold. */
enum { LARGEST = 0x7fff * 9 };
static unsigned char pattern[256 + LARGEST];

static void fill(struct slot *s) {
  memcpy(slot_bytes(s), pattern + s->seed, s->size);
}

static bool intact(const unsigned char *p, size_t size, unsigned char seed) {
  return memcmp(p, pattern + seed, size) == 0;
}

static void verify(struct slot *s) {
  const unsigned char *p = slot_bytes(s);
  if (p == NULL) model_broken("a live handle gives NULL", s);
  if (!intact(p, s->size, s->seed)) model_broken("block contents changed", s);
  if (s->kind != HANDLE && pa_usable_size(p) < s->size) model_broken("usable size below the request", s);
}

static void release(struct slot *s) {
  if (s->kind == EMPTY) return;
  verify(s);
  switch (s->kind) {
  case BLOCK: pa_free(s->p); break;
  case OBJ_BLOCK: pa_obj_free(s->p); break;
  case KEPT: pa_freelist_free(list, s->index, s->p); break;
  case HANDLE: pa_handle_free(table, s->handle); break;
  case EMPTY: break;
  }
  s->kind = EMPTY;
}

/* A size: mostly pool sizes, sometimes large ones. */
static size_t read_size(struct input *in) {
  unsigned w = word(in);
  return w & 0x8000 ? (size_t)(w & 0x7fff) * 9 : (w & 0x3ff); /* at most LARGEST */
}

static void adopt(struct slot *s, enum kind kind, void *p, size_t size, size_t alignment,
                  unsigned char seed) {
  if (p == NULL) {
    if (size != 0 && size < ((size_t)1 << 30)) model_broken("an allocation failed", s);
    return;
  }
  if ((uintptr_t)p % alignment != 0) model_broken("misaligned block", s);
  *s = (struct slot){.kind = kind, .p = p, .size = size, .seed = seed};
  fill(s);
}

static void run_op(struct input *in) {
  unsigned op = byte(in) % 16;
  struct slot *s = &slots[byte(in) % SLOTS];
  unsigned char seed = (unsigned char)byte(in);
  switch (op) {
  case 0: case 1: {
    release(s);
    size_t size = read_size(in);
    adopt(s, BLOCK, pa_malloc(size), size, size >= 8 ? 8 : 1, seed);
    break;
  }
  case 2: {
    release(s);
    size_t count = byte(in) % 64, each = byte(in);
    unsigned char *p = pa_calloc(count, each);
    if (p && count * each > 0 && (p[0] != 0 || memcmp(p, p + 1, count * each - 1) != 0))
      model_broken("calloc gave a byte that is not zero", s);
    adopt(s, BLOCK, p, count * each, count * each >= 8 ? 8 : 1, seed);
    break;
  }
  case 3: {
    if (s->kind != BLOCK) break;
    verify(s);
    size_t size = read_size(in), kept = size < s->size ? size : s->size;
    unsigned char *p = pa_realloc(s->p, size);
    if (p == NULL && size == 0) { /* freed, as glibc's realloc does */
      s->kind = EMPTY;
      break;
    }
    if (p == NULL) model_broken("realloc failed", s);
    if (!intact(p, kept, s->seed)) model_broken("realloc lost bytes", s);
    s->p = p;
    s->size = size;
    fill(s);
    break;
  }
  case 4: {
    release(s);
    size_t alignment = (size_t)8 << (byte(in) % 14), size = read_size(in);
    adopt(s, BLOCK, pa_aligned_alloc(alignment, size), size, alignment, seed);
    break;
  }
  case 5: case 6:
    release(s);
    break;
  case 7: {
    release(s);
    size_t size = read_size(in);
    adopt(s, OBJ_BLOCK, pa_obj_malloc(size), size, size >= 8 ? 8 : 1, seed);
    break;
  }
  case 8: {
    release(s);
    unsigned index = byte(in) % FREELIST_SIZES;
    size_t size = 16 + index * FREELIST_STEP;
    adopt(s, KEPT, pa_freelist_alloc(list, index), size, 8, seed);
    s->index = index;
    break;
  }
  case 9: {
    release(s);
    size_t size = 1 + word(in) % 700;
    pa_handle handle = pa_handle_alloc(table, size);
    if (handle == 0) model_broken("pa_handle_alloc failed", s);
    *s = (struct slot){.kind = HANDLE, .handle = handle, .size = size, .seed = seed};
    fill(s);
    break;
  }
  case 10:
    if (s->kind == HANDLE) {
      verify(s);
      if (pa_handle_pin(table, s->handle) != slot_bytes(s)) model_broken("pin moved the object", s);
      pa_compact(table, NULL); /* a pinned object stays put */
      verify(s);
      if (pa_handle_unpin(table, s->handle) != 0) model_broken("unpin failed", s);
    }
    break;
  case 11:
    pa_compact(table, NULL);
    break;
  case 12:
    if (s->kind == BLOCK) {
      verify(s);
      free_on_helper(s->p);
      s->kind = EMPTY;
    }
    break;
  case 13:
    if (s->kind != EMPTY) verify(s);
    break;
  case 14:
    pa_collect();
    break;
  default:
    pa_freelist_clear(list);
    break;
  }
}

static size_t pool_blocks_in_use(const struct pa_stats *stats) {
  size_t total = 0;
  for (size_t i = 0; i < stats->size_classes; i++) total += stats->classes[i].blocks_in_use;
  return total;
}

static void setup(void) {
  if (list != NULL) return;
  for (size_t i = 0; i < sizeof pattern; i++) pattern[i] = (unsigned char)(i * 7);
  struct pa_freelist_config config = {.name = "fuzz", .size = 16, .step = FREELIST_STEP,
                                      .sizes = FREELIST_SIZES, .max_kept = 8,
                                      .domain = PA_DOMAIN_OBJ};
  list = pa_freelist_create(&config);
  table = pa_handles_create();
  if (list == NULL || table == NULL || pthread_create(&helper.thread, NULL, helper_main, NULL) != 0)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup();
  struct input in = {data, size, 0};
  while (in.at < in.size) run_op(&in);
  for (int i = 0; i < SLOTS; i++) release(&slots[i]);
  pa_collect(); /* the helper's frees, and the free list's objects */
  struct pa_stats stats;
  pa_stats_get(&stats);
  if (pool_blocks_in_use(&stats) != 0 || stats.raw_bytes_in_use != 0) {
    fprintf(stderr, "fuzz_ops: %zu pool blocks and %zu raw bytes still in use after freeing all\n",
            pool_blocks_in_use(&stats), stats.raw_bytes_in_use);
    abort();
  }
  return 0;
}
