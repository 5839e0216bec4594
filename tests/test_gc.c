/* Reference counting and the cycle collector (src/gc.c): cycles of every
 * shape collected exactly, nothing reachable ever freed, generations and
 * thresholds, frozen objects, finalizers once each with resurrection
 * (PEP 442), collection callbacks, deep structures freed without deep recursion, listing the
 * objects and their referrers, misuse reports, and a
 * randomized graph compared after every collection with a reachability
 * model of its own, and runtimes on several threads at once and handed
 * from one thread to another.
 *
 *   test_gc          everything
 *   test_gc NAME     one misuse (a child)
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h"

enum { SLOTS = 4, MODEL_OBJECTS = 4096, IDS = 65536 };

/* A node: an id and up to four references. */
struct node {
  int id;
  struct node *slot[SLOTS];
};

static int finalized_count[IDS];
static bool dead[IDS];
static int next_id;
static struct node *resurrect_into; /* where the resurrecting finalizer stores */

static void node_traverse(void *obj, pa_gc_visit visit, void *arg) {
  struct node *n = obj;
  for (int i = 0; i < SLOTS; i++)
    if (n->slot[i]) visit(n->slot[i], arg);
}

static void node_clear(void *obj) {
  struct node *n = obj;
  for (int i = 0; i < SLOTS; i++) {
    struct node *old = n->slot[i];
    n->slot[i] = NULL;
    pa_decref(old);
  }
}

/* Finalizer: records the death (no resurrection in this type). */
static void node_finalize(void *obj) {
  struct node *n = obj;
  finalized_count[n->id]++;
  dead[n->id] = true;
}

static void phoenix_finalize(void *obj) {
  struct node *n = obj;
  finalized_count[n->id]++;
  pa_incref(n);
  resurrect_into = n;
}

static const pa_gc_type node_type = {"node", sizeof(struct node), node_traverse, node_clear,
                                     node_finalize};
static const pa_gc_type plain_type = {"plain", sizeof(struct node), node_traverse, node_clear, NULL};
static const pa_gc_type phoenix_type = {"phoenix", sizeof(struct node), node_traverse, node_clear,
                                        phoenix_finalize};
static const pa_gc_type atom_type = {"atom", 64, NULL, NULL, NULL};

static struct node *new_node(pa_gc_runtime *rt, const pa_gc_type *type) {
  struct node *n = pa_gc_new(rt, type);
  n->id = next_id++;
  return n;
}

/* a.slot[i] = b, counted. */
static void link_to(struct node *a, int i, struct node *b) {
  pa_incref(b);
  struct node *old = a->slot[i];
  a->slot[i] = b;
  pa_decref(old);
}

/* a and b refer to each other through slot 0. */
static void link_both(struct node *a, struct node *b) {
  link_to(a, 0, b);
  link_to(b, 0, a);
}

static size_t alive(pa_gc_runtime *rt) {
  struct pa_gc_stats s;
  pa_gc_stats_get(rt, &s);
  return s.objects;
}

static void test_shapes(void) {
  pa_gc_runtime *rt = pa_gc_runtime_create(NULL);
  pa_gc_disable(rt); /* only the collections asked for */
  size_t blocks_before = check_pool_blocks_in_use();

  struct node *self = new_node(rt, &plain_type);
  link_to(self, 0, self);
  pa_decref(self);
  CHECK_EQ(alive(rt), 1); /* counting cannot free a self-loop */
  CHECK_EQ(pa_gc_collect(rt, 0), 1);
  CHECK_EQ(alive(rt), 0);

  /* objects are 16-byte aligned whatever their size, fixed or variable */
  size_t misaligned = 0;
  for (size_t extra = 0; extra < 200; extra++) {
    void *var = pa_gc_new_var(rt, &atom_type, extra);
    misaligned += (uintptr_t)var % 16 != 0;
    pa_decref(var);
    void *fixed = pa_gc_new(rt, &plain_type);
    misaligned += (uintptr_t)fixed % 16 != 0;
    pa_decref(fixed);
  }
  CHECK_EQ(misaligned, 0);

  enum { RING = 10000 };
  struct node *first = new_node(rt, &plain_type), *prev = first;
  for (int i = 1; i < RING; i++) {
    struct node *n = new_node(rt, &plain_type);
    link_to(prev, 0, n);
    pa_decref(n);
    prev = n;
  }
  link_to(prev, 0, first);
  pa_decref(first);
  CHECK_EQ(alive(rt), RING);
  CHECK_EQ(pa_gc_collect(rt, 2), RING);

  enum { CLIQUE = 40 };
  struct node *members[CLIQUE];
  for (int i = 0; i < CLIQUE; i++) members[i] = pa_gc_new_var(rt, &plain_type, CLIQUE * sizeof(void *));
  for (int i = 0; i < CLIQUE; i++) /* 4 slots each, and every pair linked through a chain */
    for (int j = 0; j < SLOTS; j++) link_to(members[i], j, members[(i + j + 1) % CLIQUE]);
  for (int i = 0; i < CLIQUE; i++) pa_decref(members[i]);
  CHECK_EQ(pa_gc_collect(rt, 2), CLIQUE);

  /* A cycle hanging off a live object survives, then goes with it. */
  struct node *root = new_node(rt, &plain_type);
  struct node *a = new_node(rt, &plain_type), *b = new_node(rt, &plain_type);
  link_to(root, 0, a);
  link_both(a, b);
  pa_decref(a);
  pa_decref(b);
  CHECK_EQ(pa_gc_collect(rt, 2), 0);
  CHECK_EQ(alive(rt), 3);
  CHECK(root->slot[0] == a && a->slot[0] == b && b->slot[0] == a);
  pa_decref(root); /* the root by counting, the cycle by the collector */
  CHECK_EQ(alive(rt), 2);
  CHECK_EQ(pa_gc_collect(rt, 2), 2);

  /* A cycle holding the only reference to a chain and to an atom. */
  struct node *c = new_node(rt, &plain_type), *d = new_node(rt, &plain_type);
  link_both(c, d);
  struct node *chain = new_node(rt, &plain_type);
  link_to(c, 1, chain);
  pa_decref(chain);
  for (int i = 0; i < 10; i++) {
    struct node *next = new_node(rt, &plain_type);
    link_to(chain, 0, next);
    pa_decref(next);
    chain = next;
  }
  void *atom = pa_gc_new(rt, &atom_type);
  memset(atom, 'x', 64);
  link_to(d, 1, atom);
  pa_decref(atom);
  pa_decref(c);
  pa_decref(d);
  CHECK_EQ(alive(rt), 14);
  CHECK_EQ(pa_gc_collect(rt, 2), 14);
  CHECK_EQ(alive(rt), 0);

  struct pa_gc_stats s;
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.tracked, 0);
  CHECK_EQ(s.freed_by_collector, 1 + RING + CLIQUE + 2 + 14);
  CHECK_EQ(s.generations[2].collections, 5);
  CHECK_EQ(s.generations[0].collections, 1);
  CHECK(s.generations[2].examined >= RING + CLIQUE);
  CHECK_EQ(check_pool_blocks_in_use(), blocks_before); /* the blocks went back to the pools */
  pa_gc_runtime_destroy(rt);
}

/* A self-loop dropped at once: garbage only a collection finds. */
static void drop_self_loop(pa_gc_runtime *rt) {
  struct node *loop = new_node(rt, &plain_type);
  link_to(loop, 0, loop);
  pa_decref(loop);
}

/* Young objects are examined often, survivors move up: with garbage for
 * every collection to find, one every thresholds[0] + 1 allocations. */
static void test_generations(void) {
  struct pa_gc_config config = {{100, 5, 5}};
  pa_gc_runtime *rt = pa_gc_runtime_create(&config);
  enum { KEPT = 1000, LOOP_EVERY = 50 };
  struct node *kept[KEPT];
  int ids[KEPT];
  for (int i = 0; i < KEPT; i++) {
    kept[i] = new_node(rt, &plain_type);
    ids[i] = kept[i]->id;
    if (i % LOOP_EVERY == 0) drop_self_loop(rt);
  }
  struct pa_gc_stats s;
  pa_gc_stats_get(rt, &s);
  /* 1020 allocations: a collection at the 102nd, 203rd ... 1011th; the
   * 7th is of generation 1, as generation 0 has been collected 6 (> 5)
   * times by then; every one found the loops made since the one before */
  CHECK_EQ(s.generations[0].collections, 9);
  CHECK_EQ(s.generations[1].collections, 1);
  CHECK_EQ(s.freed_by_collector, KEPT / LOOP_EVERY);
  CHECK_EQ(s.generation_sizes[0] + s.generation_sizes[1] + s.generation_sizes[2], KEPT);
  CHECK(s.generation_sizes[1] + s.generation_sizes[2] >= 900);
  CHECK(s.generations[0].examined < 1200); /* young objects only */

  CHECK_EQ(pa_gc_disable(rt), 1);
  CHECK_EQ(pa_gc_is_enabled(rt), 0);
  for (int i = 0; i < 500; i++) pa_decref(new_node(rt, &plain_type));
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.generations[0].collections, 9); /* none while disabled */
  pa_gc_enable(rt);
  CHECK_EQ(pa_gc_collect(rt, 1), 0);
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.generation_sizes[0] + s.generation_sizes[1], 0);
  CHECK_EQ(s.generation_sizes[2], KEPT);
  CHECK(s.generations[1].nanoseconds > 0);
  for (int i = 0; i < KEPT; i++) CHECK_EQ(kept[i]->id, ids[i]);
  for (int i = 0; i < KEPT; i++) pa_decref(kept[i]);
  CHECK_EQ(alive(rt), 0);

  struct pa_gc_config half = {{100, 0, 5}};
  errno = 0;
  CHECK(pa_gc_runtime_create(&half) == NULL && errno == EINVAL);
  errno = 0;
  static const pa_gc_type no_clear = {"no clear", 8, node_traverse, NULL, NULL};
  CHECK(pa_gc_new(rt, &no_clear) == NULL && errno == EINVAL);
  errno = 0;
  CHECK(pa_gc_new_var(rt, &plain_type, SIZE_MAX - 8) == NULL && errno == ENOMEM);
  pa_gc_runtime_destroy(rt);
}

static size_t collections(pa_gc_runtime *rt) {
  struct pa_gc_stats s;
  pa_gc_stats_get(rt, &s);
  size_t total = 0;
  for (int g = 0; g < PA_GC_GENERATIONS; g++) total += s.generations[g].collections;
  return total;
}

/* Thresholds changed on a live runtime (gc.set_threshold), read back
 * (gc.get_threshold), and the counts (gc.get_count). */
static void test_config(void) {
  pa_gc_runtime *rt = pa_gc_runtime_create(NULL);
  struct pa_gc_config config;
  pa_gc_config_get(rt, &config);
  CHECK(config.thresholds[0] == 700 && config.thresholds[1] == 10 && config.thresholds[2] == 10);
  CHECK_EQ(pa_gc_config_set(rt, &(struct pa_gc_config){{3, 2, 2}}), 0);
  pa_gc_config_get(rt, &config);
  CHECK(config.thresholds[0] == 3 && config.thresholds[1] == 2 && config.thresholds[2] == 2);

  struct node *kept[40];
  size_t counts[PA_GC_GENERATIONS];
  struct pa_gc_stats s;
  for (int i = 0; i < 4; i++) kept[i] = new_node(rt, &plain_type);
  pa_gc_counts(rt, counts);
  CHECK(counts[0] == 4 && counts[1] == 0 && counts[2] == 0);
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.generations[0].collections, 0); /* 3 allocations are not past 3 */
  kept[4] = new_node(rt, &plain_type);       /* 4 are: this one collects first */
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.generations[0].collections, 1);
  pa_gc_counts(rt, counts);
  CHECK(counts[0] == 1 && counts[1] == 1 && counts[2] == 0);
  pa_decref(kept[4]); /* a tracked object's free counts against generation 0 */
  pa_gc_counts(rt, counts);
  CHECK_EQ(counts[0], 0);

  /* Collections finding nothing doubled the threshold; setting it again
   * starts from the configured value (the collection it makes may be of
   * an older generation, which includes generation 0). */
  for (int i = 4; i < 40; i++) kept[i] = new_node(rt, &plain_type);
  CHECK_EQ(pa_gc_collect(rt, 0), 0);
  CHECK_EQ(pa_gc_config_set(rt, &(struct pa_gc_config){{3, 2, 2}}), 0);
  size_t before = collections(rt);
  struct node *more[5];
  for (int i = 0; i < 4; i++) more[i] = new_node(rt, &plain_type);
  CHECK_EQ(collections(rt), before);
  more[4] = new_node(rt, &plain_type);
  CHECK_EQ(collections(rt), before + 1);

  errno = 0;
  CHECK(pa_gc_config_set(rt, &(struct pa_gc_config){{5, 0, 5}}) == -1 && errno == EINVAL);
  pa_gc_config_get(rt, &config);
  CHECK(config.thresholds[0] == 3 && config.thresholds[1] == 2); /* unchanged */
  errno = 0;
  CHECK(pa_gc_config_set(NULL, NULL) == -1 && errno == EINVAL);
  CHECK_EQ(pa_gc_config_set(rt, NULL), 0); /* CPython's again */
  pa_gc_config_get(rt, &config);
  CHECK(config.thresholds[0] == 700 && config.thresholds[1] == 10 && config.thresholds[2] == 10);
  for (int i = 4; i < 40; i++) pa_decref(kept[i]);
  for (int i = 0; i < 4; i++) pa_decref(kept[i]);
  for (int i = 0; i < 5; i++) pa_decref(more[i]);
  CHECK_EQ(alive(rt), 0);
  pa_gc_runtime_destroy(rt);
}

/* The collections made while a structure is built find nothing: each
 * doubles the generation's threshold, up to 64 times the configured one,
 * as does one that finds next to nothing; one that finds garbage in
 * earnest brings it back. */
static void test_backoff(void) {
  pa_gc_runtime *rt = pa_gc_runtime_create(&(struct pa_gc_config){{100, 5, 5}});
  /* a collection at the 102nd allocation, then 201, 401 ... 6401 later;
   * the 7th is of generation 1 and leaves generation 0's threshold */
  static const size_t gaps[] = {101, 201, 401, 801, 1601, 3201, 6401, 6401};
  enum { COLLECTIONS = sizeof gaps / sizeof gaps[0], KEPT = 19109 };
  static struct node *kept[KEPT];
  size_t at[COLLECTIONS + 1], seen = 0;
  for (size_t i = 0; i < KEPT; i++) {
    kept[i] = new_node(rt, &plain_type);
    size_t done = collections(rt);
    if (done > seen && seen < COLLECTIONS) at[seen++] = i;
    CHECK(done <= COLLECTIONS);
  }
  CHECK_EQ(seen, COLLECTIONS);
  CHECK_EQ(at[0], gaps[0]);
  for (size_t c = 1; c < COLLECTIONS; c++) CHECK_EQ(at[c] - at[c - 1], gaps[c]);
  struct pa_gc_stats s;
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.generations[0].collections, COLLECTIONS - 1);
  CHECK_EQ(s.generations[1].collections, 1);
  CHECK_EQ(s.freed_by_collector, 0);

  /* one loop among 200 survivors is next to nothing (less than one in
   * 64): the threshold stays at 6400 */
  static struct node *survivors[200], *waited[6402];
  for (int i = 0; i < 200; i++) survivors[i] = new_node(rt, &plain_type);
  drop_self_loop(rt);
  CHECK_EQ(pa_gc_collect(rt, 0), 1);
  for (int i = 0; i < 6401; i++) waited[i] = new_node(rt, &plain_type);
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.generations[0].collections, COLLECTIONS);
  waited[6401] = new_node(rt, &plain_type);
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.generations[0].collections, COLLECTIONS + 1);

  drop_self_loop(rt);
  CHECK_EQ(pa_gc_collect(rt, 0), 1); /* all it examined was garbage: back to 100 */
  struct node *more[102];
  for (int i = 0; i < 101; i++) more[i] = new_node(rt, &plain_type);
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.generations[0].collections, COLLECTIONS + 2);
  more[101] = new_node(rt, &plain_type);
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.generations[0].collections, COLLECTIONS + 3);
  for (int i = 0; i < 102; i++) pa_decref(more[i]);

  /* disabled, counts pile up past the threshold (200 now: that collection
   * found nothing); enabled, the next allocation collects */
  pa_gc_disable(rt);
  static struct node *piled[201];
  for (int i = 0; i < 201; i++) piled[i] = new_node(rt, &plain_type);
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.generations[0].collections, COLLECTIONS + 3);
  pa_gc_enable(rt);
  struct node *trigger = new_node(rt, &plain_type);
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.generations[0].collections, COLLECTIONS + 4);
  pa_decref(trigger);
  for (int i = 0; i < 200; i++) pa_decref(survivors[i]);
  for (int i = 0; i < 6402; i++) pa_decref(waited[i]);
  for (int i = 0; i < 201; i++) pa_decref(piled[i]);
  for (size_t i = 0; i < KEPT; i++) pa_decref(kept[i]);
  pa_gc_runtime_destroy(rt);
}

/* Finalizers run once, in cycles and by counting; a finalizer that stores
 * its object resurrects it, and it is not finalized again. */
static void test_finalizers(void) {
  pa_gc_runtime *rt = pa_gc_runtime_create(NULL);
  pa_gc_disable(rt);
  struct node *a = new_node(rt, &node_type), *b = new_node(rt, &node_type);
  link_both(a, b);
  int ida = a->id, idb = b->id;
  pa_decref(a);
  pa_decref(b);
  CHECK_EQ(pa_gc_collect(rt, 2), 2);
  CHECK_EQ(finalized_count[ida], 1);
  CHECK_EQ(finalized_count[idb], 1);

  struct node *single = new_node(rt, &node_type);
  int id = single->id;
  pa_decref(single);
  CHECK_EQ(finalized_count[id], 1);

  /* resurrected from a cycle: it and what it reaches survive */
  struct node *p = new_node(rt, &phoenix_type), *q = new_node(rt, &plain_type);
  link_both(p, q);
  int idp = p->id;
  pa_decref(p);
  pa_decref(q);
  resurrect_into = NULL;
  CHECK_EQ(pa_gc_collect(rt, 2), 0);
  CHECK(resurrect_into == p);
  CHECK_EQ(finalized_count[idp], 1);
  void *listed[4];
  CHECK_EQ(pa_gc_resurrected(rt, listed, 4), 2);
  CHECK(listed[0] == p || listed[1] == p);
  CHECK(p->slot[0] == q && q->slot[0] == p); /* intact */
  struct pa_gc_stats s;
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.generations[2].resurrected, 2);
  pa_gc_resurrected_clear(rt);
  CHECK_EQ(alive(rt), 2);
  pa_decref(resurrect_into); /* the cycle is garbage again: no second finalizer */
  CHECK_EQ(pa_gc_collect(rt, 2), 2);
  CHECK_EQ(finalized_count[idp], 1);

  /* resurrected by counting */
  struct node *r = new_node(rt, &phoenix_type);
  int idr = r->id;
  pa_decref(r);
  CHECK(resurrect_into == r);
  CHECK_EQ(pa_refcount(r), 1);
  pa_decref(r);
  CHECK_EQ(finalized_count[idr], 1);
  CHECK_EQ(alive(rt), 0);
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.finalized, 5);
  pa_gc_runtime_destroy(rt);
}

/* Collection callbacks (gc.callbacks): what each call saw, and what the
 * callback did from inside the collection. */
static struct {
  struct pa_gc_event events[16];
  size_t count;
  size_t nested;         /* pa_gc_collect from the callback: what it returned */
  bool make_garbage;     /* at the start: make a self-loop and drop it */
  size_t live_in_stop;   /* objects alive, read at the stop */
} seen;

static void record_event(pa_gc_runtime *rt, const struct pa_gc_event *event, void *arg) {
  CHECK(arg == &seen);
  if (seen.count < 16) seen.events[seen.count++] = *event;
  seen.nested += pa_gc_collect(rt, 2);
  if (event->phase == PA_GC_PHASE_START && seen.make_garbage) {
    struct node *loop = new_node(rt, &plain_type);
    link_to(loop, 0, loop);
    pa_decref(loop);
  }
  if (event->phase == PA_GC_PHASE_STOP) seen.live_in_stop = alive(rt);
}

static void test_callbacks(void) {
  pa_gc_runtime *rt = pa_gc_runtime_create(NULL);
  pa_gc_callback_set(rt, record_event, &seen);
  for (int i = 0; i < 3; i++) {
    struct node *a = new_node(rt, &plain_type), *b = new_node(rt, &plain_type);
    link_both(a, b);
    pa_decref(a);
    pa_decref(b);
  }
  struct node *kept = new_node(rt, &plain_type);
  struct pa_gc_stats before, after;
  pa_gc_stats_get(rt, &before);
  CHECK_EQ(pa_gc_collect(rt, 1), 6);
  pa_gc_stats_get(rt, &after);
  CHECK_EQ(seen.count, 2);
  CHECK(seen.events[0].phase == PA_GC_PHASE_START && seen.events[0].generation == 1 &&
        seen.events[0].collected == 0);
  CHECK(seen.events[1].phase == PA_GC_PHASE_STOP && seen.events[1].generation == 1);
  CHECK_EQ(seen.events[1].collected, 6);
  CHECK_EQ(seen.events[1].resurrected, 0);
  CHECK(seen.events[1].nanoseconds > 0);
  CHECK_EQ(seen.events[1].nanoseconds,
           after.generations[1].nanoseconds - before.generations[1].nanoseconds);
  CHECK_EQ(seen.live_in_stop, 1); /* the garbage is gone when the stop is called */
  CHECK_EQ(seen.nested, 0);       /* no collection from inside one */

  /* garbage made by the start callback is this collection's */
  seen.make_garbage = true;
  CHECK_EQ(pa_gc_collect(rt, 0), 1);
  seen.make_garbage = false;
  CHECK_EQ(seen.count, 4);
  CHECK_EQ(seen.events[3].collected, 1);

  /* a finalizer's resurrection is reported at the stop */
  struct node *p = new_node(rt, &phoenix_type);
  link_to(p, 0, p);
  pa_decref(p);
  resurrect_into = NULL;
  CHECK_EQ(pa_gc_collect(rt, 2), 0);
  CHECK(resurrect_into == p);
  CHECK_EQ(seen.count, 6);
  CHECK(seen.events[5].generation == 2 && seen.events[5].resurrected == 1);
  pa_gc_resurrected_clear(rt);
  pa_decref(p);

  /* automatic collections call it too (the fourth object is the first
   * past a threshold of 2); NULL removes it */
  CHECK_EQ(pa_gc_config_set(rt, &(struct pa_gc_config){{2, 10, 10}}), 0);
  struct node *young[4];
  for (int i = 0; i < 3; i++) young[i] = new_node(rt, &plain_type);
  CHECK_EQ(seen.count, 6);
  young[3] = new_node(rt, &plain_type);
  CHECK_EQ(seen.count, 8);
  CHECK(seen.events[6].phase == PA_GC_PHASE_START && seen.events[7].phase == PA_GC_PHASE_STOP &&
        seen.events[7].generation == 0);
  pa_gc_callback_set(rt, NULL, NULL);
  CHECK_EQ(pa_gc_collect(rt, 2), 1); /* the phoenix, its finalizer run already */
  CHECK_EQ(seen.count, 8);
  for (int i = 0; i < 4; i++) pa_decref(young[i]);
  pa_decref(kept);
  CHECK_EQ(alive(rt), 0);
  CHECK_EQ(seen.nested, 0);
  pa_gc_runtime_destroy(rt);
}

/* A clear may store an object of the garbage it is part of: that object
 * survives, cleared, and goes when its last reference does. */
static struct node *kept_by_clear;
static void keeper_clear(void *obj) {
  struct node *n = obj;
  if (kept_by_clear == NULL && n->slot[0] != NULL) {
    kept_by_clear = n->slot[0];
    pa_incref(kept_by_clear);
  }
  node_clear(obj);
}

/* A finalizer dropping its object's references, which frees another
 * object of the same garbage while finalizers run. */
static void dropping_finalize(void *obj) {
  node_finalize(obj);
  node_clear(obj);
}

static void test_collector_edges(void) {
  static const pa_gc_type keeper = {"keeper", sizeof(struct node), node_traverse, keeper_clear, NULL};
  static const pa_gc_type dropping = {"dropping", sizeof(struct node), node_traverse, node_clear,
                                      dropping_finalize};
  pa_gc_runtime *rt = pa_gc_runtime_create(NULL);
  pa_gc_disable(rt);
  struct node *a = new_node(rt, &keeper), *b = new_node(rt, &keeper);
  link_both(a, b);
  pa_decref(a);
  pa_decref(b);
  kept_by_clear = NULL;
  CHECK_EQ(pa_gc_collect(rt, 0), 1);
  /* whichever was cleared first kept the other */
  CHECK(kept_by_clear == a || kept_by_clear == b);
  CHECK_EQ(pa_refcount(kept_by_clear), 1);
  CHECK(kept_by_clear->slot[0] == NULL); /* cleared, but alive */
  struct pa_gc_stats s;
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.objects, 1);
  CHECK_EQ(s.generation_sizes[1], 1);
  pa_decref(kept_by_clear);
  CHECK_EQ(alive(rt), 0);

  struct node *d = new_node(rt, &dropping), *p = new_node(rt, &plain_type);
  link_both(d, p);
  int idd = d->id;
  pa_decref(d);
  pa_decref(p);
  CHECK_EQ(pa_gc_collect(rt, 2), 2);
  CHECK_EQ(finalized_count[idd], 1);
  CHECK_EQ(alive(rt), 0);
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.tracked, 0);
  CHECK_EQ(s.generations[2].resurrected, 0);
  pa_gc_runtime_destroy(rt);
}

/* The oldest generation is collected automatically only once it has grown
 * by a quarter since its last collection. */
static void test_long_lived(void) {
  pa_gc_runtime *rt = pa_gc_runtime_create(&(struct pa_gc_config){{10, 1, 1}});
  enum { OLD = 1000, BATCH = 20, MORE = 400 };
  static struct node *old[OLD + MORE];
  pa_gc_disable(rt); /* loaded first, as a program loads its data */
  for (int i = 0; i < OLD; i++) old[i] = new_node(rt, &plain_type);
  pa_gc_enable(rt);
  pa_gc_collect(rt, 2);
  struct pa_gc_stats s;
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.generation_sizes[2], OLD);
  size_t full = s.generations[2].collections, young = s.generations[0].collections;
  /* young objects dying by counting, and a little young garbage (so young
   * collections stay frequent) */
  for (int round = 0; round < 200; round++) {
    drop_self_loop(rt);
    struct node *batch[BATCH];
    for (int i = 0; i < BATCH; i++) batch[i] = new_node(rt, &plain_type);
    for (int i = 0; i < BATCH; i++) pa_decref(batch[i]);
  }
  pa_gc_stats_get(rt, &s);
  CHECK(s.generations[0].collections > young + 100);
  CHECK_EQ(s.generations[2].collections, full); /* the old generation did not grow */
  for (int i = OLD; i < OLD + MORE; i++) {
    old[i] = new_node(rt, &plain_type);
    if (i % 10 == 0) drop_self_loop(rt);
  }
  pa_gc_stats_get(rt, &s);
  CHECK(s.generations[2].collections > full); /* it grew by more than a quarter */
  for (int i = 0; i < OLD + MORE; i++) pa_decref(old[i]);
  pa_gc_collect(rt, 2); /* the last loops */
  CHECK_EQ(alive(rt), 0);
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.tracked, 0);
  pa_gc_runtime_destroy(rt);
}

/* A list of a million cells dropped at once: freed without a million
 * nested calls. */
static void test_deep(void) {
  pa_gc_runtime *rt = pa_gc_runtime_create(NULL);
  struct node *head = NULL;
  for (int i = 0; i < 1000000; i++) {
    struct node *cell = pa_gc_new(rt, &plain_type);
    cell->slot[0] = head; /* takes head's reference */
    head = cell;
  }
  CHECK_EQ(alive(rt), 1000000);
  pa_decref(head);
  CHECK_EQ(alive(rt), 0);
  pa_gc_runtime_destroy(rt);
}

/* Destroy frees what is left, cycles and all, with no finalizer: the
 * untracked atom a node held only goes with it, and an object the program
 * still holds goes too. */
static void test_destroy(void) {
  size_t blocks_before = check_pool_blocks_in_use();
  pa_gc_runtime *rt = pa_gc_runtime_create(NULL);
  size_t blocks_with_runtime = check_pool_blocks_in_use();
  struct node *a = new_node(rt, &node_type), *b = new_node(rt, &node_type);
  link_both(a, b);
  int ida = a->id;
  pa_decref(b);
  void *atom = pa_gc_new(rt, &atom_type);
  link_to(b, 1, atom);
  pa_decref(atom);
  struct node *held = new_node(rt, &node_type);
  link_to(held, 0, held);
  CHECK_EQ(check_pool_blocks_in_use(), blocks_with_runtime + 4);
  pa_gc_runtime_destroy(rt);
  CHECK_EQ(finalized_count[ida], 0);
  CHECK_EQ(check_pool_blocks_in_use(), blocks_before);
}

/* A finalizer that tries freezing and seeing the objects mid-collection. */
static pa_gc_runtime *freezing_runtime;
static size_t frozen_from_finalizer = SIZE_MAX;
static void freezing_finalize(void *obj) {
  void *out[4];
  frozen_from_finalizer = pa_gc_freeze(freezing_runtime) + pa_gc_unfreeze(freezing_runtime) +
                          pa_gc_objects(freezing_runtime, -1, out, 4) +
                          pa_gc_referrers(freezing_runtime, obj, out, 4);
}

/* pa_gc_freeze: no collection examines frozen objects (a cycle among them
 * stays), counting still frees them, young garbage still drops its
 * references to them, and generation 0's count starts again;
 * pa_gc_unfreeze puts them in the oldest generation, where the next full
 * collection finds the cycle. */
static void test_freeze(void) {
  struct pa_gc_config config = {{100, 10, 10}};
  pa_gc_runtime *rt = pa_gc_runtime_create(&config);
  struct node *a = new_node(rt, &plain_type), *b = new_node(rt, &plain_type);
  link_both(a, b);
  struct node *kept = new_node(rt, &plain_type), *counted = new_node(rt, &plain_type);
  void *atom = pa_gc_new(rt, &atom_type); /* untracked: not frozen */
  struct node *young[95];
  for (int i = 0; i < 95; i++) young[i] = new_node(rt, &plain_type);
  CHECK_EQ(pa_gc_freeze(rt), 99);
  CHECK_EQ(pa_gc_freeze_count(rt), 99);
  struct pa_gc_stats s;
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.generation_sizes[0] + s.generation_sizes[1] + s.generation_sizes[2], 0);
  CHECK_EQ(s.tracked, 99);
  for (int i = 0; i < 95; i++) pa_decref(young[i]); /* freed by counting, frozen */
  CHECK_EQ(pa_gc_freeze_count(rt), 4);
  pa_decref(a);
  pa_decref(b);

  /* 99 tracked allocations before the freeze, 101 after: no collection
   * yet, as the count started again; the 102nd collects */
  struct node *loop = NULL;
  for (int i = 0; i < 101; i++) {
    loop = new_node(rt, &plain_type);
    link_to(loop, 0, loop);
    link_to(loop, 1, kept);
    pa_decref(loop);
  }
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.generations[0].collections, 0);
  CHECK_EQ(pa_refcount(kept), 102);
  pa_decref(pa_gc_new(rt, &plain_type));
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.generations[0].collections, 1);
  CHECK_EQ(s.freed_by_collector, 101); /* the young loops, not a and b */
  CHECK_EQ(pa_refcount(kept), 1);
  CHECK_EQ(pa_gc_collect(rt, 2), 0);
  CHECK_EQ(pa_gc_freeze_count(rt), 4);
  CHECK_EQ(alive(rt), 5); /* a, b, kept, counted, atom */

  pa_decref(counted);
  CHECK_EQ(pa_gc_freeze_count(rt), 3);
  CHECK_EQ(pa_gc_freeze(rt), 0); /* nothing tracked outside it */
  CHECK_EQ(pa_gc_unfreeze(rt), 3);
  CHECK_EQ(pa_gc_freeze_count(rt), 0);
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.generation_sizes[2], 3);
  CHECK_EQ(pa_gc_collect(rt, 2), 2); /* a and b at last */
  CHECK_EQ(alive(rt), 2);
  pa_decref(kept);
  pa_decref(atom);
  CHECK_EQ(alive(rt), 0);
  pa_gc_runtime_destroy(rt);

  /* generation 1's count starts again too: two young collections before
   * the freeze and three after make no collection of generation 1 (it
   * comes once generation 0 has been collected more than twice) */
  struct pa_gc_config two = {{100, 2, 10}};
  rt = pa_gc_runtime_create(&two);
  for (int i = 0; i < 203; i++) drop_self_loop(rt); /* collects at the 102nd and 203rd */
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.generations[0].collections, 2);
  pa_gc_freeze(rt);
  for (int i = 0; i < 304; i++) drop_self_loop(rt);
  pa_gc_stats_get(rt, &s);
  CHECK_EQ(s.generations[0].collections, 5);
  CHECK_EQ(s.generations[1].collections, 0);
  pa_gc_runtime_destroy(rt);

  /* mid-collection they all do nothing */
  size_t blocks_before = check_pool_blocks_in_use();
  freezing_runtime = pa_gc_runtime_create(NULL);
  static const pa_gc_type freezing_type = {"freezing", sizeof(struct node), node_traverse,
                                           node_clear, freezing_finalize};
  struct node *survivor = new_node(freezing_runtime, &plain_type);
  struct node *freezing = new_node(freezing_runtime, &freezing_type);
  link_to(freezing, 0, freezing);
  pa_decref(freezing);
  CHECK_EQ(pa_gc_collect(freezing_runtime, 0), 1);
  CHECK_EQ(frozen_from_finalizer, 0);
  CHECK_EQ(pa_gc_freeze_count(freezing_runtime), 0);
  pa_decref(survivor);

  /* destroying a runtime frees its frozen objects too */
  size_t blocks_with_runtime = check_pool_blocks_in_use();
  struct node *frozen_loop = new_node(freezing_runtime, &plain_type);
  link_to(frozen_loop, 0, frozen_loop);
  CHECK_EQ(pa_gc_freeze(freezing_runtime), 1);
  CHECK_EQ(check_pool_blocks_in_use(), blocks_with_runtime + 1);
  pa_gc_runtime_destroy(freezing_runtime);
  CHECK_EQ(check_pool_blocks_in_use(), blocks_before);
  CHECK_EQ(pa_gc_freeze(NULL) + pa_gc_unfreeze(NULL) + pa_gc_freeze_count(NULL), 0);
}

static bool holds(void *const *objects, size_t count, const void *obj) {
  for (size_t i = 0; i < count; i++)
    if (objects[i] == obj) return true;
  return false;
}

/* pa_gc_objects lists a generation's objects (or the frozen ones, or all),
 * pa_gc_referrers the objects whose traverse reports one; neither counts a
 * reference, and a short array gets the first ones and the whole count. */
static void test_inspect(void) {
  pa_gc_runtime *rt = pa_gc_runtime_create(NULL);
  pa_gc_disable(rt);
  struct node *a = new_node(rt, &plain_type), *b = new_node(rt, &plain_type);
  struct node *c = new_node(rt, &plain_type);
  void *atom = pa_gc_new(rt, &atom_type);
  link_both(a, b);
  link_to(c, 0, a);
  link_to(c, 1, a);
  link_to(c, 2, atom);
  void *out[8] = {0};
  CHECK_EQ(pa_gc_objects(rt, -1, out, 8), 3); /* the atom is not tracked */
  CHECK(holds(out, 3, a) && holds(out, 3, b) && holds(out, 3, c));
  CHECK_EQ(pa_gc_objects(rt, 0, out, 8), 3);
  CHECK_EQ(pa_gc_objects(rt, 1, out, 8), 0);
  CHECK_EQ(pa_gc_referrers(rt, a, out, 8), 2); /* c once, for both its references */
  CHECK(holds(out, 2, b) && holds(out, 2, c));
  CHECK_EQ(pa_gc_referrers(rt, b, out, 8), 1);
  CHECK(out[0] == a);
  CHECK_EQ(pa_gc_referrers(rt, atom, out, 8), 1);
  CHECK(out[0] == c);
  CHECK_EQ(pa_gc_referrers(rt, c, out, 8), 0);
  CHECK_EQ(pa_gc_referents(c, out, 8), 3); /* in traverse's order, a twice */
  CHECK(out[0] == a && out[1] == a && out[2] == atom);
  CHECK_EQ(pa_gc_referents(b, out, 8), 1);
  CHECK(out[0] == a);
  CHECK_EQ(pa_gc_referents(atom, out, 8), 0); /* no traverse */
  out[1] = NULL;
  CHECK_EQ(pa_gc_referents(c, out, 1), 3);
  CHECK(out[0] == a && out[1] == NULL);
  errno = 0;
  CHECK(pa_gc_referents(NULL, out, 8) == 0 && errno == EINVAL);
  out[1] = NULL;
  CHECK_EQ(pa_gc_objects(rt, -1, out, 1), 3);
  CHECK(holds(out, 1, a) || holds(out, 1, b) || holds(out, 1, c));
  CHECK(out[1] == NULL);
  CHECK_EQ(pa_refcount(a), 4); /* the program, b and c twice */
  CHECK_EQ(pa_refcount(c), 1);

  CHECK_EQ(pa_gc_collect(rt, 0), 0);
  CHECK_EQ(pa_gc_objects(rt, 0, out, 8), 0);
  CHECK_EQ(pa_gc_objects(rt, 1, out, 8), 3);
  CHECK_EQ(pa_gc_freeze(rt), 3);
  CHECK_EQ(pa_gc_objects(rt, PA_GC_GENERATIONS, out, 8), 3);
  CHECK_EQ(pa_gc_objects(rt, -1, out, 8), 3);
  CHECK_EQ(pa_gc_referrers(rt, a, out, 8), 2);

  errno = 0;
  CHECK(pa_gc_objects(rt, PA_GC_GENERATIONS + 1, out, 8) == 0 && errno == EINVAL);
  errno = 0;
  CHECK(pa_gc_objects(rt, -2, out, 8) == 0 && errno == EINVAL);
  errno = 0;
  CHECK(pa_gc_objects(NULL, -1, out, 8) == 0 && errno == EINVAL);
  errno = 0;
  CHECK(pa_gc_referrers(rt, NULL, out, 8) == 0 && errno == EINVAL);
  errno = 0;
  CHECK(pa_gc_referrers(NULL, a, out, 8) == 0 && errno == EINVAL);
  pa_decref(atom);
  pa_decref(c);
  pa_decref(a);
  pa_decref(b);
  pa_gc_runtime_destroy(rt);
}

/* The randomized test: a graph mutated at random, compared after every
 * full collection with the set the model says is reachable from the
 * program's references, and after every partial one checked to have lost
 * nothing reachable.  The model keeps its own edges, by id. */
struct model {
  struct node *object[MODEL_OBJECTS];
  int edge[MODEL_OBJECTS][SLOTS]; /* ids, -1 for none */
  int roots[MODEL_OBJECTS];       /* references the program holds */
  bool reachable[MODEL_OBJECTS];
  int first, count;
};

static void model_reach(struct model *m) {
  static int stack[MODEL_OBJECTS];
  int top = 0;
  memset(m->reachable, 0, sizeof m->reachable);
  for (int i = m->first; i < m->first + m->count; i++)
    if (m->roots[i] > 0) {
      m->reachable[i] = true;
      stack[top++] = i;
    }
  while (top > 0) {
    int i = stack[--top];
    for (int k = 0; k < SLOTS; k++) {
      int j = m->edge[i][k];
      if (j >= 0 && !m->reachable[j]) {
        m->reachable[j] = true;
        stack[top++] = j;
      }
    }
  }
}

static int pick_reachable(struct model *m, unsigned long long *random) {
  if (m->count == 0) return -1;
  for (int tries = 0; tries < 64; tries++) {
    int i = m->first + (int)(check_random(random) % (unsigned)m->count);
    if (m->reachable[i]) return i;
  }
  return -1;
}

/* ---- Runtimes and threads -------------------------------------------------- */

/* What one thread did with its own runtime (checked by the main thread:
 * the harness's counters are not shared safely). */
struct runtime_work {
  pa_gc_runtime *rt;
  unsigned long long seed;
  size_t rings, nodes, kept_sum, read_sum;
  struct pa_gc_stats stats;
};

enum { KEPT_RINGS = 64 };

/* A ring of `length` plain nodes, each holding the next (and every other
 * one a node three further on), its first node also holding a chain of
 * two (freed by counting once the ring is collected); returns that first
 * node, which holds the only outside reference.  id: the ring's number,
 * in every node of the ring. */
static struct node *ring_new(pa_gc_runtime *rt, int length, int id) {
  struct node *nodes[8];
  for (int i = 0; i < length; i++) {
    nodes[i] = pa_gc_new(rt, &plain_type);
    nodes[i]->id = id;
  }
  for (int i = 0; i < length; i++) {
    link_to(nodes[i], 0, nodes[(i + 1) % length]);
    if (i % 2 == 0) link_to(nodes[i], 1, nodes[(i + 3) % length]);
  }
  for (int i = 1; i < length; i++) pa_decref(nodes[i]);
  struct node *chain = pa_gc_new(rt, &plain_type);
  chain->slot[0] = pa_gc_new(rt, &plain_type);
  nodes[0]->slot[2] = chain;
  return nodes[0];
}

/* Makes a ring of 8 and drops it, collection off: the thread exits with
 * its cycle still in the runtime. */
static void *ring_left(void *arg) {
  struct runtime_work *w = arg;
  int was = pa_gc_disable(w->rt);
  pa_decref(ring_new(w->rt, 8, 1));
  if (was) pa_gc_enable(w->rt);
  return NULL;
}

static size_t ring_ids(const struct node *ring) {
  size_t sum = 0;
  const struct node *n = ring;
  do {
    sum += (size_t)n->id;
    n = n->slot[0];
  } while (n != ring);
  return sum;
}

/* Rings made and dropped with automatic collection on, some kept for a
 * while and read back whole when dropped; everything collected at the
 * end.  One runtime per thread, all threads at once. */
static void *runtime_churn(void *arg) {
  struct runtime_work *w = arg;
  pa_gc_runtime *rt = w->rt ? w->rt : pa_gc_runtime_create(NULL);
  struct node *kept[KEPT_RINGS] = {NULL};
  for (size_t r = 0; r < w->rings; r++) {
    int length = 1 + (int)(check_random(&w->seed) % 8);
    struct node *ring = ring_new(rt, length, (int)r);
    struct node *pair = pa_gc_new(rt, &plain_type); /* no cycle: counting frees it */
    pair->slot[0] = pa_gc_new(rt, &plain_type);
    pa_decref(pair);
    w->nodes += (size_t)length + 4;
    if (r % 8 == 0) {
      size_t slot = (r / 8) % KEPT_RINGS;
      if (kept[slot]) {
        w->read_sum += ring_ids(kept[slot]);
        pa_decref(kept[slot]);
      }
      kept[slot] = ring;
      w->kept_sum += ring_ids(ring);
    } else {
      pa_decref(ring);
    }
  }
  for (size_t i = 0; i < KEPT_RINGS; i++)
    if (kept[i]) {
      w->read_sum += ring_ids(kept[i]);
      pa_decref(kept[i]);
    }
  pa_gc_collect(rt, 2);
  pa_gc_stats_get(rt, &w->stats);
  if (w->rt == NULL) pa_gc_runtime_destroy(rt);
  return NULL;
}

static void work_check(const struct runtime_work *w) {
  CHECK_EQ(w->stats.created, w->nodes);
  CHECK_EQ(w->stats.objects, 0);
  CHECK_EQ(w->stats.freed_by_refcount + w->stats.freed_by_collector, w->nodes);
  CHECK(w->stats.generations[0].collections > 0); /* automatic ones ran */
  CHECK(w->stats.freed_by_refcount >= 2 * w->rings); /* the pairs, at least */
  CHECK_EQ(w->read_sum, w->kept_sum);              /* kept rings stayed whole */
}

/* Several runtimes on several threads at once (each used by one), then
 * one runtime used by three threads in turn: objects made on one thread
 * are dropped and collected on another, whose frees go back to the pools
 * of a thread that has exited. */
static void test_threads(void) {
  enum { THREADS = 4 };
  pthread_t threads[THREADS];
  struct runtime_work work[THREADS];
  for (int i = 0; i < THREADS; i++) {
    work[i] = (struct runtime_work){.seed = 0x9e3779b9u * (unsigned)(i + 1), .rings = 20000};
    CHECK(pthread_create(&threads[i], NULL, runtime_churn, &work[i]) == 0);
  }
  for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
  for (int i = 0; i < THREADS; i++) work_check(&work[i]);

  pa_gc_runtime *rt = pa_gc_runtime_create(NULL);
  struct runtime_work turns[3];
  size_t created = 0;
  for (int i = 0; i < 3; i++) {
    turns[i] = (struct runtime_work){.rt = rt, .seed = 77u + (unsigned)i, .rings = 5000};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, runtime_churn, &turns[i]) == 0);
    pthread_join(thread, NULL);
    created += turns[i].nodes;
    CHECK_EQ(turns[i].stats.created, created);
    CHECK_EQ(turns[i].stats.objects, 0);
    CHECK_EQ(turns[i].read_sum, turns[i].kept_sum);
  }
  /* A cycle left by an exited thread, collected here. */
  struct runtime_work leave = {.rt = rt};
  pthread_t thread;
  CHECK(pthread_create(&thread, NULL, ring_left, &leave) == 0);
  pthread_join(thread, NULL);
  CHECK_EQ(alive(rt), 10);
  CHECK_EQ(pa_gc_collect(rt, 2), 10); /* the ring, and its chain as it goes */
  CHECK_EQ(alive(rt), 0);
  pa_gc_runtime_destroy(rt);
}

static void test_random_graph(void) {
  static struct model m;
  pa_gc_runtime *rt = pa_gc_runtime_create(&(struct pa_gc_config){{50, 3, 3}});
  unsigned long long random = 42;
  next_id = 0; /* ids index the model; the earlier tests' objects are gone */
  memset(dead, 0, sizeof dead);
  memset(finalized_count, 0, sizeof finalized_count);
  m.first = next_id;
  int wrong_full = 0, lost = 0, collections = 0, wrong_sizes = 0;
  for (int op = 0; op < 30000 && m.first + m.count < MODEL_OBJECTS; op++) {
    model_reach(&m);
    unsigned choice = (unsigned)(check_random(&random) % 100);
    int a = pick_reachable(&m, &random), b = pick_reachable(&m, &random);
    int k = (int)(check_random(&random) % SLOTS);
    if (choice < 12 || a < 0) { /* a new object, held by the program */
      struct node *n = new_node(rt, &node_type);
      int i = n->id;
      m.object[i] = n;
      for (int s = 0; s < SLOTS; s++) m.edge[i][s] = -1;
      m.roots[i] = 1;
      m.count++;
      if (a >= 0 && choice % 2) { /* joined to a both ways: a cycle */
        link_to(n, 0, m.object[a]);
        m.edge[i][0] = a;
        link_to(m.object[a], k, n);
        m.edge[a][k] = i;
      }
    } else if (choice < 55 && b >= 0) { /* a.slot[k] = b */
      link_to(m.object[a], k, m.object[b]);
      m.edge[a][k] = b;
    } else if (choice < 60) { /* a.slot[k] = NULL */
      struct node *old = m.object[a]->slot[k];
      m.object[a]->slot[k] = NULL;
      m.edge[a][k] = -1;
      pa_decref(old);
    } else if (choice < 88) { /* the program drops a reference */
      for (int tries = 0; tries < 64; tries++) {
        int i = m.first + (int)(check_random(&random) % (unsigned)m.count);
        if (m.roots[i] > 0) {
          m.roots[i]--;
          pa_decref(m.object[i]);
          break;
        }
      }
    } else if (choice < 94) { /* the program takes another */
      m.roots[a]++;
      pa_incref(m.object[a]);
    } else {
      int gen = (int)(check_random(&random) % 3);
      pa_gc_collect(rt, gen);
      collections++;
      struct pa_gc_stats s;
      pa_gc_stats_get(rt, &s);
      wrong_sizes += s.tracked != s.objects; /* every node is tracked */
      model_reach(&m);
      for (int i = m.first; i < m.first + m.count; i++) {
        lost += m.reachable[i] && dead[i];
        wrong_full += gen == 2 && m.reachable[i] == dead[i];
      }
    }
  }
  model_reach(&m);
  for (int i = m.first; i < m.first + m.count; i++) lost += m.reachable[i] && dead[i];
  CHECK_EQ(lost, 0);
  CHECK_EQ(wrong_full, 0);
  CHECK_EQ(wrong_sizes, 0);
  CHECK(collections > 500);
  for (int i = m.first; i < m.first + m.count; i++) CHECK(finalized_count[i] <= 1);
  struct pa_gc_stats s;
  pa_gc_stats_get(rt, &s);
  printf("random graph: %zu objects, %d collections, %zu freed by counting, %zu by the collector\n", s.created, collections, s.freed_by_refcount, s.freed_by_collector);
  CHECK(s.freed_by_collector > 100 && s.freed_by_refcount > 100);
  for (int i = m.first; i < m.first + m.count; i++)
    while (m.roots[i]-- > 0) pa_decref(m.object[i]);
  pa_gc_collect(rt, 2);
  CHECK_EQ(alive(rt), 0);
  pa_gc_runtime_destroy(rt);
}

/* ---- Misuse, each in a child ---------------------------------------------- */

/* b holds a reference to a it never counted: freeing a frees b, whose
 * clear then drops a's count below zero. */
static int decref_below_zero(void) {
  pa_gc_runtime *rt = pa_gc_runtime_create(NULL);
  struct node *a = pa_gc_new(rt, &plain_type), *b = pa_gc_new(rt, &plain_type);
  link_to(a, 0, b);
  pa_decref(b);
  b->slot[0] = a; /* the bug */
  pa_decref(a);
  return 0;
}

/* An object of a new runtime, freed by its last decref. */
static struct node *freed_node(void) {
  pa_gc_runtime *rt = pa_gc_runtime_create(NULL);
  struct node *n = pa_gc_new(rt, &plain_type);
  pa_decref(n);
  return n;
}

static int use_after_free(void) {
  pa_incref(freed_node());
  return 0;
}

static int referents_of_freed(void) {
  struct node *n = freed_node();
  void *out[4];
  return pa_gc_referents(n, out, 4) == 0 && errno == EINVAL ? 0 : 1;
}

/* A count at its limit: the next incref is reported and not counted. */
static int incref_overflow(void) {
  pa_gc_runtime *rt = pa_gc_runtime_create(NULL);
  struct node *n = pa_gc_new(rt, &plain_type);
  ((struct pa_gc_object_state *)n - 1)->refcount = UINT32_MAX; /* as after 4G increfs */
  pa_incref(n);
  return pa_refcount(n) == UINT32_MAX ? 0 : 1;
}

static int dealloc_counted(void) {
  pa_gc_runtime *rt = pa_gc_runtime_create(NULL);
  struct node *n = pa_gc_new(rt, &plain_type);
  pa_gc_dealloc(n);
  return pa_refcount(n) == 1 && alive(rt) == 1 ? 0 : 1; /* left alone */
}

static void bad_traverse(void *obj, pa_gc_visit visit, void *arg) {
  (void)obj;
  static long not_an_object[8];
  visit(&not_an_object[6], arg);
}

static void no_references(void *obj) { (void)obj; }

static int traverse_bad_pointer(void) {
  static const pa_gc_type bad = {"bad", 8, bad_traverse, no_references, NULL};
  pa_gc_runtime *rt = pa_gc_runtime_create(NULL);
  pa_gc_new(rt, &bad);
  pa_gc_collect(rt, 0);
  return 0;
}

/* b's one reference, from a, reported twice by a's traverse. */
static void doubled_traverse(void *obj, pa_gc_visit visit, void *arg) {
  node_traverse(obj, visit, arg);
  node_traverse(obj, visit, arg);
}

static int traverse_overcount(void) {
  static const pa_gc_type doubled = {"doubled", sizeof(struct node), doubled_traverse, node_clear,
                                     NULL};
  pa_gc_runtime *rt = pa_gc_runtime_create(NULL);
  struct node *a = pa_gc_new(rt, &doubled), *b = pa_gc_new(rt, &plain_type);
  link_to(a, 0, b);
  pa_decref(b);
  pa_gc_collect(rt, 0);
  return a->slot[0] == b ? 0 : 1; /* nothing lost */
}

static const struct {
  const char *name;
  int (*run)(void);
  const char *report;
} misuses[] = {
    {"decref_below_zero", decref_below_zero, "reference count below zero"},
    {"use_after_free", use_after_free, "pa_incref(0x"},
    {"referents_of_freed", referents_of_freed, "pa_gc_referents(0x"},
    {"traverse_bad_pointer", traverse_bad_pointer, "which is not a live object of this runtime"},
    {"incref_overflow", incref_overflow, "reference count past its limit"},
    {"dealloc_counted", dealloc_counted, "not a live object with a count of zero"},
    {"traverse_overcount", traverse_overcount, "traverse reports more references to it than its count"},
};

static void test_misuse(const char *argv0) {
  static char err[8192];
  for (size_t i = 0; i < sizeof misuses / sizeof *misuses; i++) {
#ifdef PA_ASAN
    if (misuses[i].run == use_after_free || misuses[i].run == referents_of_freed)
      continue; /* AddressSanitizer reports it first */
#endif
    char *plain[] = {NULL};
    char *debug[] = {"POOLALLOC_DEBUG=1", NULL};
    int status = check_run_child(argv0, misuses[i].name, plain, err, sizeof err);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* reported, ignored */
    CHECK(strstr(err, "poolalloc: gc: ") != NULL && strstr(err, misuses[i].report) != NULL);
    status = check_run_child(argv0, misuses[i].name, debug, err, sizeof err);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT); /* fatal in debug mode */
    CHECK(strstr(err, misuses[i].report) != NULL);
  }
}

int main(int argc, char **argv) {
  if (argc == 2) {
    for (size_t i = 0; i < sizeof misuses / sizeof *misuses; i++)
      if (strcmp(argv[1], misuses[i].name) == 0) return misuses[i].run();
    return 127;
  }
  test_shapes();
  test_generations();
  test_backoff();
  test_config();
  test_finalizers();
  test_callbacks();
  test_collector_edges();
  test_long_lived();
  test_deep();
  test_destroy();
  test_freeze();
  test_inspect();
  test_threads();
  test_random_graph();
  if (getenv("POOLALLOC_DEBUG") == NULL) test_misuse(argv[0]);
  return check_done();
}
