/*
 * Threaded allocation workloads, plain malloc and free (other allocators
 * come in with LD_PRELOAD; bench/threads.sh runs them side by side):
 *
 *   threads WORKLOAD THREADS OPS
 *
 *   prodcons  half the threads produce blocks of 16..512 bytes and hand
 *             them, 64 at a time in a block of pointers, through a ring
 *             each to a consumer thread, which frees them: every free is
 *             a cross-thread free.  One thread produces and consumes in
 *             turn.
 *   private   each thread churns a working set of its own (4,096 slots,
 *             8..512 bytes): no block crosses threads.
 *   trees     each thread builds binary trees of 48-byte nodes (depth 10)
 *             and frees them whole.
 *   random    every thread replaces random slots of one shared array
 *             (8,192 slots) with blocks of 16 bytes to 16 KiB by an
 *             atomic exchange, and frees what it took out: most blocks
 *             die in a thread that did not make them.
 *   lives     OPS short threads, one after another (THREADS is ignored):
 *             each frees the 8 blocks the one before it left and leaves
 *             8 of its own; the resident size after the first 1,000 and
 *             at the end go to stderr (a program must not grow by
 *             starting and ending threads).
 *
 * OPS (malloc+free pairs in all) is split across the threads, so the work
 * is the same at every thread count.  Prints the pairs done and a checksum
 * of the sizes, the same for every allocator.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned long long next_random(unsigned long long *state) {
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  return *state * 2685821657736338717ULL;
}

static void *allocate(size_t size) {
  char *p = malloc(size);
  if (p == NULL) {
    fprintf(stderr, "threads: out of memory\n");
    exit(1);
  }
  p[0] = (char)size; /* touched, as a program's would be */
  return p;
}

/* One cache line each: every step writes random and checksum, and
 * workers sharing a line would make private work contend. */
struct worker {
  _Alignas(64) pthread_t thread;
  unsigned index;
  long ops;
  unsigned long long random, checksum;
};

/* ---- prodcons: a single-producer, single-consumer ring per pair -------- */

enum { RING = 64, BATCH = 64 };
struct ring {
  _Alignas(64) _Atomic unsigned long head; /* written by the producer */
  _Alignas(64) _Atomic unsigned long tail; /* written by the consumer */
  void **slots[RING];
};
static struct ring *rings;

/* A batch of BATCH blocks, handed over in one step. */
static void produce(struct worker *w, struct ring *ring) {
  unsigned long head = atomic_load_explicit(&ring->head, memory_order_relaxed);
  while (head - atomic_load_explicit(&ring->tail, memory_order_acquire) == RING) sched_yield();
  void **batch = allocate(BATCH * sizeof *batch);
  for (int i = 0; i < BATCH; i++) {
    size_t size = 16 + next_random(&w->random) % 497;
    batch[i] = allocate(size);
    w->checksum += size;
  }
  ring->slots[head % RING] = batch;
  atomic_store_explicit(&ring->head, head + 1, memory_order_release);
}

static void consume(struct ring *ring) {
  unsigned long tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
  while (atomic_load_explicit(&ring->head, memory_order_acquire) == tail) sched_yield();
  void **batch = ring->slots[tail % RING];
  atomic_store_explicit(&ring->tail, tail + 1, memory_order_release);
  for (int i = 0; i < BATCH; i++) free(batch[i]);
  free(batch);
}

/* Each counts batches: ops / BATCH of them. */
static void *producer(void *arg) {
  struct worker *w = arg;
  for (long i = 0; i < w->ops / BATCH; i++) produce(w, &rings[w->index]);
  return NULL;
}
static void *consumer(void *arg) {
  struct worker *w = arg;
  for (long i = 0; i < w->ops / BATCH; i++) consume(&rings[w->index]);
  return NULL;
}
static void *alone(void *arg) { /* one thread: half a ring at a time */
  struct worker *w = arg;
  for (long done = 0; done < w->ops / BATCH; done += RING / 2) {
    for (int i = 0; i < RING / 2; i++) produce(w, &rings[0]);
    for (int i = 0; i < RING / 2; i++) consume(&rings[0]);
  }
  return NULL;
}

/* ---- private, trees, random ------------------------------------------- */

static void *private_churn(void *arg) {
  enum { SLOTS = 4096 };
  struct worker *w = arg;
  void **slots = calloc(SLOTS, sizeof *slots);
  for (long i = 0; i < w->ops; i++) {
    unsigned long long r = next_random(&w->random);
    size_t slot = r % SLOTS, size = 8 + (r >> 32) % 505;
    free(slots[slot]);
    slots[slot] = allocate(size);
    w->checksum += size;
  }
  for (size_t i = 0; i < SLOTS; i++) free(slots[i]);
  free(slots);
  return NULL;
}

struct node {
  struct node *left, *right;
  long payload[4];
};
static struct node *tree(int depth, long *made) {
  struct node *n = allocate(sizeof *n);
  (*made)++;
  n->left = depth > 0 ? tree(depth - 1, made) : NULL;
  n->right = depth > 0 ? tree(depth - 1, made) : NULL;
  return n;
}
static void tree_free(struct node *n) {
  if (n == NULL) return;
  tree_free(n->left);
  tree_free(n->right);
  free(n);
}
static void *trees(void *arg) {
  struct worker *w = arg;
  for (long made = 0; made < w->ops;) {
    tree_free(tree(10, &made));
    w->checksum += 1;
  }
  return NULL;
}

enum { SHARED = 8192 };
static _Atomic(void *) shared[SHARED];
static void *random_sizes(void *arg) {
  struct worker *w = arg;
  for (long i = 0; i < w->ops; i++) {
    unsigned long long r = next_random(&w->random);
    size_t size = 16 + (r >> 32) % (16 * 1024 - 15);
    free(atomic_exchange_explicit(&shared[r % SHARED], allocate(size), memory_order_acq_rel));
    w->checksum += size;
  }
  return NULL;
}

enum { LEFT = 8 };
static void *left[LEFT];
static void *short_life(void *arg) {
  struct worker *w = arg;
  for (int i = 0; i < LEFT; i++) {
    free(left[i]);
    size_t size = 16 + next_random(&w->random) % (i == 0 ? 4000 : 497);
    left[i] = allocate(size);
    w->checksum += size;
  }
  return NULL;
}

static long resident_kib(void) {
  long pages = 0, resident = 0;
  FILE *statm = fopen("/proc/self/statm", "r");
  if (statm && fscanf(statm, "%ld %ld", &pages, &resident) != 2) resident = 0;
  if (statm) fclose(statm);
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void lives(struct worker *w, long n) {
  long after_first = 0;
  for (long i = 0; i < n; i++) {
    pthread_create(&w->thread, NULL, short_life, w);
    pthread_join(w->thread, NULL);
    if (i == 999) after_first = resident_kib();
  }
  for (int i = 0; i < LEFT; i++) free(left[i]);
  fprintf(stderr, "lives: %ld KiB resident after 1000 threads, %ld KiB after %ld\n", after_first,
          resident_kib(), n);
}

/* ---- main ---------------------------------------------------------------- */

static void run(void *(*body)(void *), struct worker *workers, unsigned n) {
  for (unsigned i = 0; i < n; i++) pthread_create(&workers[i].thread, NULL, body, &workers[i]);
  for (unsigned i = 0; i < n; i++) pthread_join(workers[i].thread, NULL);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: threads prodcons|private|trees|random|lives THREADS OPS\n");
    return 2;
  }
  const char *workload = argv[1];
  unsigned threads = (unsigned)atoi(argv[2]);
  long ops = atol(argv[3]);
  if (threads < 1 || threads > 1024 || ops < 1) return 2;
  bool checksum_only_first = false;
  struct worker *workers = aligned_alloc(64, threads * sizeof *workers);
  for (unsigned i = 0; i < threads; i++)
    workers[i] = (struct worker){.index = i, .ops = ops / threads, .random = 0x9e3779b97f4a7c15ULL * (i + 1)};
  if (strcmp(workload, "prodcons") == 0) {
    unsigned pairs = threads / 2 ? threads / 2 : 1;
    rings = aligned_alloc(64, pairs * sizeof *rings);
    memset(rings, 0, pairs * sizeof *rings);
    if (threads == 1) {
      workers[0].ops = ops;
      run(alone, workers, 1);
    } else {
      for (unsigned i = 0; i < threads; i++) workers[i] = (struct worker){
          .index = i % pairs, .ops = ops / pairs, .random = 0x9e3779b97f4a7c15ULL * (i % pairs + 1)};
      for (unsigned i = 0; i < pairs; i++) pthread_create(&workers[i].thread, NULL, producer, &workers[i]);
      for (unsigned i = pairs; i < 2 * pairs; i++)
        pthread_create(&workers[i].thread, NULL, consumer, &workers[i]);
      for (unsigned i = 0; i < 2 * pairs; i++) pthread_join(workers[i].thread, NULL);
    }
    free(rings);
  } else if (strcmp(workload, "private") == 0) {
    run(private_churn, workers, threads);
  } else if (strcmp(workload, "trees") == 0) {
    run(trees, workers, threads);
  } else if (strcmp(workload, "lives") == 0) {
    lives(&workers[0], ops);
    checksum_only_first = true;
  } else if (strcmp(workload, "random") == 0) {
    run(random_sizes, workers, threads);
    for (size_t i = 0; i < SHARED; i++) free(atomic_load(&shared[i]));
  } else {
    fprintf(stderr, "threads: no workload %s\n", workload);
    return 2;
  }
  unsigned long long checksum = 0;
  for (unsigned i = 0; i < (checksum_only_first ? 1 : threads); i++) checksum += workers[i].checksum;
  printf("%s %ld %llu\n", workload, ops, checksum);
  free(workers);
  return 0;
}
