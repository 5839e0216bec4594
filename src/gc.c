/*
 * Automatic memory: reference counts and CPython's generational cycle
 * collector (Modules/gcmodule.c), for objects in the pools.
 *
 *   block (OBJ domain)   [gc_head 40 B][object: type->size (+ extra) bytes]
 *   gc_head              next, prev   the generation list it is in (tracked
 *                                     objects only), circular with a head
 *                        type, refcnt, runtime id, generation, flags
 *                        gc_refs      scratch count during a collection
 *
 * A count reaching zero frees the object at once: finalizer (once), then
 * the type's clear (which drops its references, and so may free others),
 * then the block goes back to its pool.  Freeing is iterative past a
 * depth, so dropping a list of a million cells does not overflow the stack
 * (CPython's trashcan).
 *
 * A collection of generation g (younger ones merged in):
 *   1. gc_refs = refcnt for every object under examination
 *   2. every reference between them (their traverse) is subtracted: what
 *      remains counts references from outside
 *   3. objects with gc_refs > 0 and everything they reach are reachable;
 *      the rest are moved to an unreachable list (move_unreachable: one
 *      pass, objects reached later are moved back)
 *   4. finalizers of the unreachable run (once each, PEP 442); if any ran,
 *      steps 1-3 are redone on the unreachable set: what a finalizer made
 *      reachable again is resurrected and survives
 *   5. the rest are cleared (breaking the cycles) and so freed
 *   survivors move to generation g + 1.
 * Objects of a type with no traverse hold no references and are never
 * tracked (CPython's atoms).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

enum {
  GC_UNTRACKED = 0xff,
  /* flags: the high nibble marks a live object (a freed block loses it:
   * cleared by the free, or overwritten by the debug hooks' dead bytes) */
  FLAG_ALIVE = 0xa0,
  FLAG_ALIVE_MASK = 0xf0,
  FLAG_FINALIZED = 0x01,
  FLAG_COLLECTING = 0x02,  /* in the set a collection examines */
  FLAG_UNREACHABLE = 0x04, /* moved to the unreachable list */
  /* deeper than this, frees wait on the thread's pending list */
  DEALLOC_DEPTH = 64,
};

typedef struct gc_head {
  struct gc_head *next, *prev;
  const pa_gc_type *type;
  uint32_t refcnt;
  uint16_t runtime;
  uint8_t generation; /* 0..2, or GC_UNTRACKED */
  uint8_t flags;
  intptr_t gc_refs;
} gc_head;
_Static_assert(sizeof(gc_head) == 40, "the header poolalloc.h promises");

struct pa_gc_runtime {
  uint16_t id;
  bool enabled, collecting;
  unsigned thresholds[PA_GC_GENERATIONS];
  /* generation 0: tracked allocations minus frees since its last
   * collection; generation i: collections of i - 1 since its last one */
  size_t counts[PA_GC_GENERATIONS];
  gc_head generations[PA_GC_GENERATIONS];
  struct pa_gc_stats stats;
  void **resurrected; /* held references (pa_gc_resurrected) */
  size_t nresurrected, resurrected_room;
};

/* Runtimes by id, so an object's header finds its runtime in 2 bytes. */
static struct {
  pthread_mutex_t lock;
  uint16_t last_id;
  pa_gc_runtime *by_id[PA_GC_MAX_RUNTIMES + 1];
} runtimes = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Frees deferred past DEALLOC_DEPTH, linked through next: the runtimes of
 * one thread share it, as they share its stack. */
static _Thread_local struct {
  gc_head *pending;
  unsigned depth;
} dealloc;

static gc_head *head_of(const void *obj) { return (gc_head *)obj - 1; }
static void *object_of(gc_head *head) { return head + 1; }

static bool head_alive(const gc_head *head) {
  return (head->flags & FLAG_ALIVE_MASK) == FLAG_ALIVE;
}

/* ---- Lists --------------------------------------------------------------- */

static void list_init(gc_head *list) { list->next = list->prev = list; }
static bool list_empty(const gc_head *list) { return list->next == list; }

static void list_unlink(gc_head *node) {
  node->prev->next = node->next;
  node->next->prev = node->prev;
}

static void list_append(gc_head *node, gc_head *list) {
  node->prev = list->prev;
  node->next = list;
  list->prev->next = node;
  list->prev = node;
}

static void list_move(gc_head *node, gc_head *list) {
  list_unlink(node);
  list_append(node, list);
}

/* Appends every node of from to to; from ends empty. */
static void list_merge(gc_head *from, gc_head *to) {
  if (list_empty(from)) return;
  to->prev->next = from->next;
  from->next->prev = to->prev;
  to->prev = from->prev;
  from->prev->next = to;
  list_init(from);
}

/* ---- Reports ------------------------------------------------------------- */

static void report(const char *what, const void *obj, const char *detail) {
  pa_message("poolalloc: gc: %s(%p): %s", what, obj, detail);
  debug_misuse_end();
}

/* Whether the header is readable without faulting: pool blocks always are,
 * others are asked of the OS. */
static bool head_readable(const gc_head *head) {
  if ((uintptr_t)head % 8 != 0) return false;
  return pa_arena_of(head) != NULL || os_is_mapped(head, sizeof *head);
}

/* ---- Freeing --------------------------------------------------------------- */

static void object_untrack(gc_head *head) {
  if (head->generation == GC_UNTRACKED) return;
  list_unlink(head);
  pa_gc_runtime *rt = runtimes.by_id[head->runtime];
  if (rt && head->generation == 0 && rt->counts[0] > 0) rt->counts[0]--;
  head->generation = GC_UNTRACKED;
}

/* head is untracked, with a count of 0: its references go, then its block. */
static void object_release(gc_head *head) {
  if (head->type->clear) head->type->clear(object_of(head));
  pa_gc_runtime *rt = runtimes.by_id[head->runtime];
  if (rt) {
    if (rt->collecting)
      rt->stats.freed_by_collector++;
    else
      rt->stats.freed_by_refcount++;
  }
  head->flags = 0;
  pa_obj_free(head);
}

static void object_dealloc(gc_head *head) {
  if (head->type->finalize && !(head->flags & FLAG_FINALIZED)) {
    head->flags |= FLAG_FINALIZED;
    pa_gc_runtime *rt = runtimes.by_id[head->runtime];
    if (rt) rt->stats.finalized++;
    head->refcnt = 1;
    head->type->finalize(object_of(head));
    if (--head->refcnt != 0) return; /* the finalizer stored it: resurrected */
  }
  object_untrack(head);
  if (dealloc.depth >= DEALLOC_DEPTH) {
    head->next = dealloc.pending;
    dealloc.pending = head;
    return;
  }
  dealloc.depth++;
  object_release(head);
  if (dealloc.depth == 1)
    while (dealloc.pending) {
      gc_head *next = dealloc.pending;
      dealloc.pending = next->next;
      object_release(next);
    }
  dealloc.depth--;
}

/* obj's header, or NULL (reported) when obj is not a live object. */
static gc_head *live_head(void *obj, const char *caller) {
  gc_head *head = head_of(obj);
  if (__builtin_expect(head_alive(head), 1)) return head;
  report(caller, obj, "not a live object (freed already?)");
  return NULL;
}

PA_ENTRY void pa_incref(void *obj) {
  if (obj == NULL) return;
  gc_head *head = live_head(obj, "pa_incref");
  if (head) head->refcnt++;
}

PA_ENTRY void pa_decref(void *obj) {
  if (obj == NULL) return;
  gc_head *head = live_head(obj, "pa_decref");
  if (head == NULL) return;
  if (__builtin_expect(head->refcnt == 0, 0)) {
    report("pa_decref", obj, "reference count below zero");
    return;
  }
  if (--head->refcnt == 0) object_dealloc(head);
}

size_t pa_refcount(const void *obj) { return obj ? head_of(obj)->refcnt : 0; }
const pa_gc_type *pa_gc_type_of(const void *obj) { return obj ? head_of(obj)->type : NULL; }

/* ---- Collection ------------------------------------------------------------ */

/* A referent traverse reported: a live object of this runtime, or reported
 * (once: in the subtracting pass) and ignored. */
static gc_head *referent_head(pa_gc_runtime *rt, void *referent, bool report_bad) {
  gc_head *head = head_of(referent);
  if (head_readable(head) && head_alive(head) && head->runtime == rt->id) return head;
  if (report_bad) {
    char detail[160];
    snprintf(detail, sizeof detail, "traverse reported %p, which is not a live object of this runtime",
             referent);
    report("pa_gc_collect", rt, detail);
  }
  return NULL;
}

struct visit_args {
  pa_gc_runtime *rt;
  gc_head *list;
};

static void visit_subtract(void *referent, void *arg) {
  if (referent == NULL) return;
  gc_head *head = referent_head(arg, referent, true);
  if (head && (head->flags & FLAG_COLLECTING)) head->gc_refs--;
}

/* A reachable object reaches this one: if it was moved to the unreachable
 * list it comes back (at the tail, to be scanned in turn); if it was not
 * scanned yet, the scan will find it reachable. */
static void visit_reachable(void *referent, void *arg) {
  const struct visit_args *args = arg;
  if (referent == NULL) return;
  gc_head *head = referent_head(args->rt, referent, false);
  if (head == NULL || !(head->flags & FLAG_COLLECTING)) return;
  if (head->flags & FLAG_UNREACHABLE) {
    head->flags &= (uint8_t)~FLAG_UNREACHABLE;
    list_move(head, args->list);
    head->gc_refs = 1;
  } else if (head->gc_refs == 0) {
    head->gc_refs = 1;
  }
}

static void traverse_all(gc_head *list, pa_gc_visit visit, void *arg) {
  for (gc_head *h = list->next; h != list; h = h->next) h->type->traverse(object_of(h), visit, arg);
}

/* Steps 1-3 on `list`: what stays in it is reachable, the rest goes to
 * unreachable.  Returns how many were examined. */
static size_t find_unreachable(pa_gc_runtime *rt, gc_head *list, gc_head *unreachable) {
  size_t examined = 0;
  for (gc_head *h = list->next; h != list; h = h->next, examined++) {
    h->gc_refs = h->refcnt;
    h->flags = (uint8_t)((h->flags & ~FLAG_UNREACHABLE) | FLAG_COLLECTING);
  }
  traverse_all(list, visit_subtract, rt);
  struct visit_args args = {rt, list};
  gc_head *h = list->next;
  while (h != list) {
    if (h->gc_refs > 0) {
      h->type->traverse(object_of(h), visit_reachable, &args);
      h = h->next;
    } else {
      gc_head *next = h->next;
      list_move(h, unreachable);
      h->flags |= FLAG_UNREACHABLE;
      h = next;
    }
  }
  return examined;
}

/* Survivors join generation `to`. */
static void survive(gc_head *list, gc_head *to, unsigned generation) {
  for (gc_head *h = list->next; h != list; h = h->next) {
    h->flags &= (uint8_t)~(FLAG_COLLECTING | FLAG_UNREACHABLE);
    h->generation = (uint8_t)generation;
  }
  list_merge(list, to);
}

/* Step 4: returns whether any finalizer ran; the objects still alive are
 * left in `finalized`. */
static bool run_finalizers(pa_gc_runtime *rt, gc_head *unreachable, gc_head *finalized) {
  bool any = false;
  while (!list_empty(unreachable)) {
    gc_head *h = unreachable->next;
    list_move(h, finalized);
    if (h->type->finalize == NULL || (h->flags & FLAG_FINALIZED)) continue;
    any = true;
    h->refcnt++;
    h->flags |= FLAG_FINALIZED;
    rt->stats.finalized++;
    h->type->finalize(object_of(h));
    pa_decref(object_of(h));
  }
  return any;
}

static void resurrected_hold(pa_gc_runtime *rt, gc_head *list) {
  for (gc_head *h = list->next; h != list; h = h->next) {
    if (rt->nresurrected == rt->resurrected_room) {
      size_t room = rt->resurrected_room ? 2 * rt->resurrected_room : 16;
      void **grown = pa_mem_realloc(rt->resurrected, room * sizeof *grown);
      if (grown == NULL) return; /* the list is a report: a shorter one will do */
      rt->resurrected = grown;
      rt->resurrected_room = room;
    }
    h->refcnt++;
    rt->resurrected[rt->nresurrected++] = object_of(h);
  }
}

/* Step 5: each object is held while its references are cleared, then let
 * go; clearing one frees others of the list, which unlink themselves. */
static void delete_garbage(gc_head *garbage, gc_head *old, unsigned old_generation) {
  while (!list_empty(garbage)) {
    gc_head *h = garbage->next;
    h->refcnt++;
    h->type->clear(object_of(h));
    h->flags &= (uint8_t)~(FLAG_COLLECTING | FLAG_UNREACHABLE);
    h->generation = (uint8_t)old_generation;
    list_move(h, old);
    pa_decref(object_of(h));
  }
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static size_t collect(pa_gc_runtime *rt, unsigned gen) {
  uint64_t start = now_ns();
  pa_gc_resurrected_clear(rt);
  rt->collecting = true;
  size_t freed_before = rt->stats.freed_by_collector;
  for (unsigned i = 0; i < gen; i++) list_merge(&rt->generations[i], &rt->generations[gen]);
  gc_head *young = &rt->generations[gen];
  unsigned older = gen + 1 < PA_GC_GENERATIONS ? gen + 1 : gen;
  gc_head survivors, unreachable, finalized, garbage;
  list_init(&survivors);
  list_init(&unreachable);
  list_init(&finalized);
  list_init(&garbage);
  list_merge(young, &survivors);
  size_t examined = find_unreachable(rt, &survivors, &unreachable);
  survive(&survivors, &rt->generations[older], older);
  size_t resurrected = 0;
  if (run_finalizers(rt, &unreachable, &finalized)) {
    find_unreachable(rt, &finalized, &garbage);
    for (gc_head *h = finalized.next; h != &finalized; h = h->next) resurrected++;
    resurrected_hold(rt, &finalized);
    survive(&finalized, &rt->generations[older], older);
  } else {
    list_merge(&finalized, &garbage);
  }
  delete_garbage(&garbage, &rt->generations[older], older);

  for (unsigned i = 0; i <= gen; i++) rt->counts[i] = 0;
  if (gen + 1 < PA_GC_GENERATIONS) rt->counts[gen + 1]++;
  struct pa_gc_generation_stats *g = &rt->stats.generations[gen];
  g->collections++;
  g->examined += examined;
  g->collected += rt->stats.freed_by_collector - freed_before;
  g->resurrected += resurrected;
  rt->collecting = false;
  g->nanoseconds += now_ns() - start;
  return rt->stats.freed_by_collector - freed_before;
}

/* The oldest generation over its threshold, as CPython chooses. */
static void collect_generations(pa_gc_runtime *rt) {
  for (int gen = PA_GC_GENERATIONS - 1; gen >= 0; gen--)
    if (rt->counts[gen] > rt->thresholds[gen]) {
      collect(rt, (unsigned)gen);
      return;
    }
}

PA_ENTRY size_t pa_gc_collect(pa_gc_runtime *rt, int gen) {
  if (rt == NULL || rt->collecting) return 0;
  if (gen < 0 || gen >= PA_GC_GENERATIONS) gen = PA_GC_GENERATIONS - 1;
  return collect(rt, (unsigned)gen);
}

void pa_gc_enable(pa_gc_runtime *rt) { rt->enabled = true; }
int pa_gc_disable(pa_gc_runtime *rt) {
  int was = rt->enabled;
  rt->enabled = false;
  return was;
}
int pa_gc_is_enabled(const pa_gc_runtime *rt) { return rt->enabled; }

/* ---- Objects --------------------------------------------------------------- */

PA_ENTRY void *pa_gc_new_var(pa_gc_runtime *rt, const pa_gc_type *type, size_t extra) {
  size_t size;
  if (rt == NULL || type == NULL || (type->traverse && type->clear == NULL)) {
    errno = EINVAL;
    return NULL;
  }
  if (__builtin_add_overflow(type->size, extra, &size) ||
      __builtin_add_overflow(size, sizeof(gc_head), &size)) {
    errno = ENOMEM;
    return NULL;
  }
  bool tracked = type->traverse != NULL;
  if (tracked && rt->enabled && !rt->collecting && rt->counts[0] > rt->thresholds[0])
    collect_generations(rt);
  gc_head *head = pa_obj_calloc(1, size);
  if (head == NULL) return NULL;
  head->type = type;
  head->refcnt = 1;
  head->runtime = rt->id;
  head->flags = FLAG_ALIVE;
  head->generation = GC_UNTRACKED;
  if (tracked) {
    head->generation = 0;
    list_append(head, &rt->generations[0]);
    rt->counts[0]++;
  }
  rt->stats.created++;
  return object_of(head);
}

PA_ENTRY void *pa_gc_new(pa_gc_runtime *rt, const pa_gc_type *type) {
  return pa_gc_new_var(rt, type, 0);
}

/* ---- Runtimes -------------------------------------------------------------- */

static const unsigned default_thresholds[PA_GC_GENERATIONS] = {700, 10, 10};

PA_ENTRY pa_gc_runtime *pa_gc_runtime_create(const struct pa_gc_config *config) {
  unsigned thresholds[PA_GC_GENERATIONS];
  bool any = false, all = true;
  for (int i = 0; i < PA_GC_GENERATIONS; i++) {
    thresholds[i] = config ? config->thresholds[i] : 0;
    any |= thresholds[i] != 0;
    all &= thresholds[i] != 0;
  }
  if (any && !all) {
    errno = EINVAL;
    return NULL;
  }
  if (!any) memcpy(thresholds, default_thresholds, sizeof thresholds);
  pa_gc_runtime *rt = pa_mem_calloc(1, sizeof *rt);
  if (rt == NULL) return NULL;
  pthread_mutex_lock(&runtimes.lock);
  uint16_t id = runtimes.last_id;
  for (unsigned tries = 0; tries < PA_GC_MAX_RUNTIMES; tries++) {
    id = (uint16_t)(id % PA_GC_MAX_RUNTIMES + 1);
    if (runtimes.by_id[id] == NULL) {
      runtimes.by_id[id] = rt;
      runtimes.last_id = id;
      rt->id = id;
      break;
    }
  }
  pthread_mutex_unlock(&runtimes.lock);
  if (rt->id == 0) {
    pa_mem_free(rt);
    errno = EAGAIN;
    return NULL;
  }
  rt->enabled = true;
  memcpy(rt->thresholds, thresholds, sizeof thresholds);
  for (int i = 0; i < PA_GC_GENERATIONS; i++) list_init(&rt->generations[i]);
  return rt;
}

PA_ENTRY void pa_gc_runtime_destroy(pa_gc_runtime *rt) {
  if (rt == NULL) return;
  pa_gc_resurrected_clear(rt);
  rt->collecting = true;
  gc_head all, cleared;
  list_init(&all);
  list_init(&cleared);
  for (int i = 0; i < PA_GC_GENERATIONS; i++) list_merge(&rt->generations[i], &all);
  for (gc_head *h = all.next; h != &all; h = h->next) h->flags |= FLAG_FINALIZED;
  while (!list_empty(&all)) {
    gc_head *h = all.next;
    h->refcnt++; /* held: what clear frees is the others */
    list_move(h, &cleared);
    h->type->clear(object_of(h));
  }
  while (!list_empty(&cleared)) {
    gc_head *h = cleared.next;
    list_unlink(h);
    h->flags = 0;
    pa_obj_free(h);
  }
  pthread_mutex_lock(&runtimes.lock);
  runtimes.by_id[rt->id] = NULL;
  pthread_mutex_unlock(&runtimes.lock);
  pa_mem_free(rt->resurrected);
  pa_mem_free(rt);
}

/* ---- Statistics and resurrected objects ----------------------------------- */

void pa_gc_stats_get(const pa_gc_runtime *rt, struct pa_gc_stats *out) {
  *out = rt->stats;
  out->objects = out->created - out->freed_by_refcount - out->freed_by_collector;
  out->tracked = 0;
  for (int i = 0; i < PA_GC_GENERATIONS; i++) {
    size_t n = 0;
    for (const gc_head *h = rt->generations[i].next; h != &rt->generations[i]; h = h->next) n++;
    out->generation_sizes[i] = n;
    out->tracked += n;
  }
}

size_t pa_gc_resurrected(const pa_gc_runtime *rt, void **out, size_t max) {
  for (size_t i = 0; i < max && i < rt->nresurrected; i++) out[i] = rt->resurrected[i];
  return rt->nresurrected;
}

void pa_gc_resurrected_clear(pa_gc_runtime *rt) {
  size_t n = rt->nresurrected;
  rt->nresurrected = 0;
  for (size_t i = 0; i < n; i++) pa_decref(rt->resurrected[i]);
}
