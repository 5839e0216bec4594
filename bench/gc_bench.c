/* Automatic memory against the Boehm-Demers-Weiser collector and against
 * manual pa_malloc/pa_free, on the same two workloads (bench/gc.sh):
 *
 *   gc_bench trees DEPTH      binary-trees (the Benchmarks Game's): a
 *                             long-lived tree, and many trees of each depth
 *                             made, checked and dropped
 *   gc_bench graphs ROUNDS [KEPT]
 *                             rings of 12 nodes with a cross link each,
 *                             most dropped at once, one in 16 kept for a
 *                             while (the last KEPT of those, 4096 unless
 *                             given): garbage made of cycles, next to a
 *                             live heap of 12 * KEPT nodes
 *
 * With GC_BENCH_STATS set, the collector variant collects what is left
 * at exit and prints its statistics on stderr.
 *
 * Built four times: USE_BOEHM (GC_MALLOC, nothing freed by hand),
 * USE_MANUAL (pa_malloc, every node freed by the program, which knows the
 * shapes), USE_INLINE (CPython's algorithm written for this one type,
 * gc_inline.h: the algorithm's own cost) and none of them (pa_gc_new,
 * pa_decref, the cycle collector).
 */
#include <poolalloc.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef USE_BOEHM
#include <gc.h>
#endif
#if defined(USE_BOEHM) || defined(USE_MANUAL)
#define COUNTED 0 /* references not counted */
#else
#define COUNTED 1
#endif

struct node {
  struct node *a, *b;
  long value;
};

#if defined(USE_BOEHM)
#define VARIANT "boehm"
static struct node *node_new(void) { return GC_MALLOC(sizeof(struct node)); }
static void tree_drop(struct node *n) { (void)n; }
static void ring_drop(struct node *n, int size) { (void)n, (void)size; }
static void link_node(struct node **field, struct node *target) { *field = target; }
#elif defined(USE_MANUAL)
#define VARIANT "manual"
static struct node *node_new(void) {
  struct node *n = pa_malloc(sizeof *n);
  n->a = n->b = NULL;
  return n;
}
static void tree_drop(struct node *n) {
  if (n == NULL) return;
  tree_drop(n->a);
  tree_drop(n->b);
  pa_free(n);
}
static void ring_drop(struct node *n, int size) {
  for (int i = 0; i < size; i++) {
    struct node *next = n->a;
    pa_free(n);
    n = next;
  }
}
static void link_node(struct node **field, struct node *target) { *field = target; }
#elif defined(USE_INLINE)
#define VARIANT "inline"
#include "gc_inline.h"
static struct node *node_new(void) { return inline_new(); }
static void node_decref(struct node *n) { inline_decref(n); }
static void link_node(struct node **field, struct node *target) {
  inline_incref(target);
  *field = target;
}
#else
#define VARIANT "pa_gc"
static void node_traverse(void *obj, pa_gc_visit visit, void *arg) {
  struct node *n = obj;
  if (n->a) visit(n->a, arg);
  if (n->b) visit(n->b, arg);
}
static void node_clear(void *obj) {
  struct node *n = obj;
  struct node *a = n->a, *b = n->b;
  n->a = n->b = NULL;
  pa_decref(a);
  pa_decref(b);
}
static const pa_gc_type node_type = {"node", sizeof(struct node), node_traverse, node_clear, NULL};
static pa_gc_runtime *rt;
static struct node *node_new(void) { return pa_gc_new(rt, &node_type); }
static void node_decref(struct node *n) { pa_decref(n); }
static void link_node(struct node **field, struct node *target) {
  pa_incref(target);
  *field = target;
}
#endif

#if COUNTED
static void tree_drop(struct node *n) { node_decref(n); }
static void ring_drop(struct node *n, int size) {
  (void)size;
  node_decref(n);
}
#endif

static struct node *tree_make(int depth) {
  struct node *n = node_new();
  if (depth > 0) {
    n->a = tree_make(depth - 1);
    n->b = tree_make(depth - 1);
  }
  return n;
}

static long tree_check(const struct node *n) {
  return n->a ? 1 + tree_check(n->a) + tree_check(n->b) : 1;
}

static void trees(int max_depth) {
  struct node *stretch = tree_make(max_depth + 1);
  printf("stretch tree of depth %d\t check: %ld\n", max_depth + 1, tree_check(stretch));
  tree_drop(stretch);
  struct node *long_lived = tree_make(max_depth);
  for (int depth = 4; depth <= max_depth; depth += 2) {
    long iterations = 1L << (max_depth - depth + 4), check = 0;
    for (long i = 0; i < iterations; i++) {
      struct node *t = tree_make(depth);
      check += tree_check(t);
      tree_drop(t);
    }
    printf("%ld\t trees of depth %d\t check: %ld\n", iterations, depth, check);
  }
  printf("long lived tree of depth %d\t check: %ld\n", max_depth, tree_check(long_lived));
  tree_drop(long_lived);
}

enum { RING = 12 };

/* A ring through a, each node's b a node 5 further on; returns its first
 * node (the ring holds a reference to each). */
static struct node *ring_make(long seed) {
  struct node *nodes[RING];
  for (int i = 0; i < RING; i++) {
    nodes[i] = node_new();
    nodes[i]->value = seed + i;
  }
  for (int i = 0; i < RING; i++) {
    link_node(&nodes[i]->a, nodes[(i + 1) % RING]);
    link_node(&nodes[i]->b, nodes[(i + 5) % RING]);
  }
#if COUNTED
  for (int i = 1; i < RING; i++) node_decref(nodes[i]); /* the ring holds them */
#endif
  return nodes[0];
}

/* The sum of a ring's values, walked through both links: a kept ring read
 * when it is dropped shows it was kept whole (and keeps the compiler from
 * dropping the kept array in the Boehm build, whose ring_drop does nothing). */
static long ring_sum(const struct node *ring) {
  long sum = 0;
  const struct node *n = ring;
  do {
    sum += n->value + n->b->value;
    n = n->a;
  } while (n != ring);
  return sum;
}

/* Where kept rings are held: memory Boehm's collector scans for roots. */
static struct node **kept_slots(long count) {
#ifdef USE_BOEHM
  return GC_MALLOC_UNCOLLECTABLE(count * sizeof(struct node *));
#else
  return calloc(count, sizeof(struct node *));
#endif
}

static void kept_slots_free(struct node **kept) {
#ifdef USE_BOEHM
  GC_FREE(kept);
#else
  free(kept);
#endif
}

static void graphs(long rounds, long kept_count) {
  struct node **kept = kept_slots(kept_count);
  long sum = 0;
  for (long r = 0; r < rounds; r++) {
    struct node *ring = ring_make(r);
    sum += ring_sum(ring);
    if (r % 16 == 0) {
      long slot = (r / 16) % kept_count;
      if (kept[slot]) {
        sum += ring_sum(kept[slot]);
        ring_drop(kept[slot], RING);
      }
      kept[slot] = ring;
    } else {
      ring_drop(ring, RING);
    }
  }
  for (long i = 0; i < kept_count; i++)
    if (kept[i]) {
      sum += ring_sum(kept[i]);
      ring_drop(kept[i], RING);
    }
  kept_slots_free(kept);
  printf("%ld rings, sum %ld\n", rounds, sum);
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4 || (argc == 4 && (argv[1][0] == 't' || atol(argv[3]) < 1))) {
    fprintf(stderr, "usage: gc_bench trees DEPTH | graphs ROUNDS [KEPT]\n");
    return 2;
  }
#ifdef USE_BOEHM
  GC_INIT();
#elif defined(USE_INLINE)
  inline_init();
#elif !defined(USE_MANUAL)
  rt = pa_gc_runtime_create(NULL);
#endif
  if (argv[1][0] == 't')
    trees(atoi(argv[2]));
  else
    graphs(atol(argv[2]), argc == 4 ? atol(argv[3]) : 4096);
#if defined(USE_INLINE)
  if (getenv("GC_BENCH_STATS")) {
    inline_collect(INLINE_GENERATIONS - 1);
    fprintf(stderr, "%s: %zu objects left\n", VARIANT, inline_gc.blocks);
  }
#elif COUNTED
  /* Untimed (bench/gc.sh sets it for its check): the garbage left at exit
   * collected, and the statistics.  Timed runs leave it, as Boehm's leaves
   * its own. */
  if (getenv("GC_BENCH_STATS")) {
    pa_gc_collect(rt, 2);
    struct pa_gc_stats s;
    pa_gc_stats_get(rt, &s);
    fprintf(stderr, "%s: %zu objects left, %zu freed by counting, %zu by the collector\n", VARIANT,
            s.objects, s.freed_by_refcount, s.freed_by_collector);
    for (int g = 0; g < PA_GC_GENERATIONS; g++)
      fprintf(stderr, "  generation %d: %zu collections, %zu examined, %zu collected, %.1f ms\n", g,
              s.generations[g].collections, s.generations[g].examined,
              s.generations[g].collected, (double)s.generations[g].nanoseconds / 1e6);
  }
#endif
  return 0;
}
