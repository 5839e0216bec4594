/*
 * When does a free list beat the pools?  Each workload runs on the OBJ
 * domain's pools (pa_obj_malloc/pa_obj_free) or on a pa_freelist over the
 * same domain:
 *
 *   pairs N pool|list SIZE  N allocate+free pairs of SIZE bytes (a list
 *                           keeping 100, as CPython's float list)
 *   tuples N pool|list      1,000 live tuples of 0..19 items (24 + 8 n
 *                           bytes, a list per length keeping 2,000, as
 *                           CPython's); N times one dies and a new one of a
 *                           random length is made and filled
 *   burst N pool|list       rounds of 1,000 objects of 32 bytes made, then
 *                           all freed: the list keeps 100, so 900 of each
 *                           round miss and overflow
 *   xthread N pool|list     one thread makes objects of 32 bytes in batches
 *                           of 1,000, another frees them: the maker's list
 *                           is always empty, the freer's always full
 */
#include <poolalloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keeps the compiler from eliding an allocation. */
#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

static bool use_list;
static pa_freelist *list;

static void list_make(const char *name, size_t size, size_t step, unsigned sizes, unsigned keep) {
  struct pa_freelist_config config = {name, size, step, sizes, keep, PA_DOMAIN_OBJ};
  list = pa_freelist_create(&config);
  if (list == NULL) {
    perror("pa_freelist_create");
    exit(1);
  }
}

static void *object_new(unsigned index, size_t size) {
  return use_list ? pa_freelist_alloc(list, index) : pa_obj_malloc(size);
}

static void object_free(unsigned index, void *obj) {
  if (use_list)
    pa_freelist_free(list, index, obj);
  else
    pa_obj_free(obj);
}

static void run_pairs(long n, size_t size) {
  list_make("pairs", size, 0, 1, 100);
  for (long i = 0; i < n; i++) {
    void *obj = object_new(0, size);
    ESCAPE(obj);
    object_free(0, obj);
  }
}

static unsigned long long next_random(unsigned long long *state) {
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  return *state * 2685821657736338717ULL;
}

enum { TUPLE_LENGTHS = 20, LIVE_TUPLES = 1000 };

struct tuple {
  size_t length;
  size_t refcount;
  void *type;
  void *items[];
};

static struct tuple *tuple_new(size_t length) {
  struct tuple *t = object_new((unsigned)length, sizeof(struct tuple) + length * sizeof(void *));
  t->length = length;
  t->refcount = 1;
  t->type = NULL;
  for (size_t i = 0; i < length; i++) t->items[i] = t;
  return t;
}

static void run_tuples(long n) {
  list_make("tuple", sizeof(struct tuple), sizeof(void *), TUPLE_LENGTHS, 2000);
  static struct tuple *live[LIVE_TUPLES];
  unsigned long long rng = 5;
  for (int i = 0; i < LIVE_TUPLES; i++) live[i] = tuple_new(next_random(&rng) % TUPLE_LENGTHS);
  for (long i = 0; i < n; i++) {
    unsigned long long r = next_random(&rng);
    struct tuple **slot = &live[r % LIVE_TUPLES];
    object_free((unsigned)(*slot)->length, *slot);
    *slot = tuple_new((r >> 32) % TUPLE_LENGTHS);
  }
  for (int i = 0; i < LIVE_TUPLES; i++) object_free((unsigned)live[i]->length, live[i]);
}

enum { BATCH = 1000 };

static void run_burst(long n) {
  list_make("burst", 32, 0, 1, 100);
  static void *objects[BATCH];
  for (long done = 0; done < n; done += BATCH) {
    for (int i = 0; i < BATCH; i++) objects[i] = object_new(0, 32);
    for (int i = 0; i < BATCH; i++) object_free(0, objects[i]);
  }
}

/* Two batches in flight: the maker fills one while the freer empties the
 * other. */
static struct {
  void *objects[2][BATCH];
  sem_t filled, emptied;
  long batches;
} handoff;

static void *freer(void *arg) {
  (void)arg;
  for (long b = 0; b < handoff.batches; b++) {
    sem_wait(&handoff.filled);
    for (int i = 0; i < BATCH; i++) object_free(0, handoff.objects[b % 2][i]);
    sem_post(&handoff.emptied);
  }
  return NULL;
}

static void run_xthread(long n) {
  list_make("xthread", 32, 0, 1, 100);
  handoff.batches = n / BATCH;
  sem_init(&handoff.filled, 0, 0);
  sem_init(&handoff.emptied, 0, 2);
  pthread_t thread;
  pthread_create(&thread, NULL, freer, NULL);
  for (long b = 0; b < handoff.batches; b++) {
    sem_wait(&handoff.emptied);
    for (int i = 0; i < BATCH; i++) handoff.objects[b % 2][i] = object_new(0, 32);
    sem_post(&handoff.filled);
  }
  pthread_join(thread, NULL);
}

int main(int argc, char **argv) {
  if (argc < 4 || (strcmp(argv[3], "pool") != 0 && strcmp(argv[3], "list") != 0)) {
    fprintf(stderr, "usage: %s pairs|tuples|burst|xthread N pool|list [SIZE]\n", argv[0]);
    return 2;
  }
  long n = atol(argv[2]);
  use_list = strcmp(argv[3], "list") == 0;
  if (strcmp(argv[1], "pairs") == 0 && argc == 5)
    run_pairs(n, (size_t)atol(argv[4]));
  else if (strcmp(argv[1], "tuples") == 0)
    run_tuples(n);
  else if (strcmp(argv[1], "burst") == 0)
    run_burst(n);
  else if (strcmp(argv[1], "xthread") == 0)
    run_xthread(n);
  else {
    fprintf(stderr, "unknown workload %s\n", argv[1]);
    return 2;
  }
  pa_freelist_destroy(list);
  return 0;
}
