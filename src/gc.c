/*
 * Automatic memory: reference counts and CPython's generational cycle
 * collector (Modules/gcmodule.c), for objects in the pools.
 *
 *   block (OBJ domain)   [gc_head 32 B][object: type->size (+ extra) bytes]
 *                        rounded up to a multiple of 16: objects are 16-aligned
 *   gc_head              next, prev   the generation list it is in (tracked
 *                                     objects only), circular with a head;
 *                                     during a collection prev holds the
 *                                     object's count of outside references
 *                                     instead (gc_refs), as in CPython
 *                        type, refcnt, runtime id, generation, flags
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
 *      pass, objects reached later are moved back); the walk puts the
 *      reachable objects' prev links back
 *   4. finalizers of the unreachable run (once each, PEP 442); if any ran,
 *      steps 1-3 are redone on the unreachable set: what a finalizer made
 *      reachable again is resurrected and survives
 *   5. the rest is garbage, each object held (a count more) since step 3:
 *      every garbage object is cleared first, back to front (counts
 *      fall, none to zero, so no clear meets a freed object), then every
 *      one left with only its hold is freed
 *   survivors move to generation g + 1.
 * An automatic full collection waits until the oldest generation has
 * grown by a quarter since the last one kept it (CPython counts promotions
 * into it instead, long_lived_pending, even of objects dead since), so a
 * large live heap is not walked again and again.  A collection that
 * frees next to nothing (fewer than one in 64 of the objects it examined)
 * doubles its generation's threshold, up to 64 times, until one frees
 * more (backoff_update).
 * Objects of a type with no traverse hold no references and are never
 * tracked (CPython's atoms).  pa_gc_freeze moves every tracked object to a
 * permanent list past the generations, which no collection merges or
 * examines (CPython's gc.freeze): references to them count as outside
 * ones.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inline.h"

enum {
  /* frozen (pa_gc_freeze): in no list a collection merges, and past every
   * generation a collection examines */
  GC_PERMANENT = PA_GC_GENERATIONS,
  GC_UNTRACKED = 0xff,
  GC_EXAMINED = 0xfe, /* found unreachable: in no generation for now */
  /* flags: the high nibble marks a live object (a freed block loses it:
   * cleared by the free, or overwritten by the debug hooks' dead bytes) */
  FLAG_ALIVE = PA_GC_ALIVE,
  FLAG_ALIVE_MASK = PA_GC_ALIVE_MASK,
  FLAG_FINALIZED = 0x01,
  FLAG_COLLECTING = 0x02, /* under examination; its prev holds gc_refs */
  /* moved to the unreachable list (prev is a link again); a count reaching
   * zero leaves the free to the collector */
  FLAG_UNREACHABLE = 0x04,
  /* deeper than this, frees wait on the thread's pending list */
  DEALLOC_DEPTH = 64,
  /* a collection of a generation that frees fewer than one object in
   * BACKOFF_YIELD of those it examined doubles its threshold, up to
   * 2^BACKOFF_MAX times the configured one (backoff_update) */
  BACKOFF_YIELD = 64,
  BACKOFF_MAX = 6,
};

typedef struct gc_head {
  struct gc_head *next;
  union {
    struct gc_head *prev;
    uintptr_t gc_refs; /* while FLAG_COLLECTING and not FLAG_UNREACHABLE */
  };
  const pa_gc_type *type;
  uint32_t refcnt;
  uint16_t runtime;
  uint8_t generation; /* 0..2, GC_PERMANENT, GC_EXAMINED or GC_UNTRACKED */
  uint8_t flags;
} gc_head;
_Static_assert(sizeof(gc_head) == 32, "the header poolalloc.h promises");
/* its tail is poolalloc.h's pa_gc_object_state, for the inline counts */
_Static_assert(offsetof(gc_head, refcnt) ==
                   sizeof(gc_head) - sizeof(struct pa_gc_object_state) +
                       offsetof(struct pa_gc_object_state, refcount) &&
                   offsetof(gc_head, runtime) ==
                       offsetof(gc_head, refcnt) + offsetof(struct pa_gc_object_state, runtime) &&
                   offsetof(gc_head, generation) ==
                       offsetof(gc_head, refcnt) + offsetof(struct pa_gc_object_state, generation) &&
                   offsetof(gc_head, flags) ==
                       offsetof(gc_head, refcnt) + offsetof(struct pa_gc_object_state, flags),
               "gc_head ends with pa_gc_object_state");

struct pa_gc_runtime {
  uint16_t id;
  bool enabled, collecting;
  bool in_callback; /* no collection starts from the callback */
  /* a traverse named a bad pointer in this collection: the later passes
   * check every referent again instead of trusting the first */
  bool bad_referent;
  /* referents in this arena (key: address >> PA_ARENA_BITS) are readable:
   * no arena is released while a collection walks */
  uintptr_t readable_arena;
  unsigned thresholds[PA_GC_GENERATIONS];
  /* collections of each generation in a row that found (next to)
   * nothing, up to BACKOFF_MAX: its threshold in use is thresholds <<
   * backoff (threshold_in_use) */
  unsigned backoff[PA_GC_GENERATIONS];
  /* generation 0: tracked allocations minus frees since its last
   * collection; generation i: collections of i - 1 since its last one */
  size_t counts[PA_GC_GENERATIONS];
  /* the generations' lists, then the permanent one */
  gc_head generations[PA_GC_GENERATIONS + 1];
  size_t sizes[PA_GC_GENERATIONS + 1]; /* objects in each */
  /* counts[0] past this collects (young_limit_update) */
  size_t young_limit;
  /* the type of the last object pa_gc_new_var made: its checks passed */
  const pa_gc_type *checked_type;
  /* the oldest generation's size after its last collection */
  size_t long_lived_total;
  struct pa_gc_stats stats;
  pa_gc_callback callback; /* pa_gc_callback_set */
  void *callback_arg;
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
} dealloc __attribute__((tls_model("initial-exec")));

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
  _pa_message("poolalloc: gc: %s(%p): %s", what, obj, detail);
  _pa_debug_misuse_end();
}

/* ---- Freeing --------------------------------------------------------------- */

/* Any tracked object's free counts against generation 0's allocations,
 * as in CPython. */
static void object_untrack(pa_gc_runtime *rt, gc_head *head) {
  list_unlink(head);
  if (head->generation <= GC_PERMANENT) rt->sizes[head->generation]--;
  if (rt->counts[0] > 0) rt->counts[0]--;
  head->generation = GC_UNTRACKED;
}

static void block_free(gc_head *head) {
  head->flags = 0;
  pa_free_fast(PA_DOMAIN_OBJ, head);
}

/* head is untracked, with a count of 0: its references go, then its block. */
static void object_release(pa_gc_runtime *rt, gc_head *head) {
  if (head->type->clear) head->type->clear(object_of(head));
  if (rt->collecting)
    rt->stats.freed_by_collector++;
  else
    rt->stats.freed_by_refcount++;
  block_free(head);
}

/* Runs head's finalizer (its count at zero); returns whether the finalizer
 * stored it somewhere, which resurrects it. */
static bool finalize_resurrects(pa_gc_runtime *rt, gc_head *head) {
  head->flags |= FLAG_FINALIZED;
  rt->stats.finalized++;
  head->refcnt = 1;
  head->type->finalize(object_of(head));
  return --head->refcnt != 0;
}

static void object_dealloc(gc_head *head) {
  if (head->flags & FLAG_UNREACHABLE) return; /* the collector frees it */
  pa_gc_runtime *rt = runtimes.by_id[head->runtime]; /* objects die before it */
  if (head->type->finalize && !(head->flags & FLAG_FINALIZED) && finalize_resurrects(rt, head))
    return;
  if (head->generation != GC_UNTRACKED) object_untrack(rt, head);
  if (dealloc.depth >= DEALLOC_DEPTH) {
    head->next = dealloc.pending;
    dealloc.pending = head;
    return;
  }
  dealloc.depth++;
  object_release(rt, head);
  if (dealloc.depth == 1)
    while (dealloc.pending) {
      gc_head *next = dealloc.pending;
      dealloc.pending = next->next;
      object_release(runtimes.by_id[next->runtime], next);
    }
  dealloc.depth--;
}

PA_ENTRY void pa_gc_dealloc(void *obj) {
  gc_head *head = head_of(obj);
  if (__builtin_expect(!head_alive(head) || head->refcnt != 0, 0)) {
    report("pa_gc_dealloc", obj, "not a live object with a count of zero");
    return;
  }
  object_dealloc(head);
}

void pa_gc_misuse(void *obj, const char *caller) {
  const gc_head *head = head_of(obj);
  if (!head_alive(head))
    report(caller, obj, "not a live object (freed already?)");
  else if (head->refcnt == 0)
    report(caller, obj, "reference count below zero");
  else
    report(caller, obj, "reference count past its limit (UINT32_MAX)");
}

size_t pa_refcount(const void *obj) { return obj ? head_of(obj)->refcnt : 0; }
const pa_gc_type *pa_gc_type_of(const void *obj) { return obj ? head_of(obj)->type : NULL; }

/* ---- Collection ------------------------------------------------------------ */

/* Whether the header is readable without faulting: pool blocks always are,
 * others are asked of the OS. */
static bool head_readable(pa_gc_runtime *rt, const gc_head *head) {
  if ((uintptr_t)head % 8 != 0) return false;
  if (pa_arena_of(head) != NULL) {
    rt->readable_arena = (uintptr_t)head >> PA_ARENA_BITS;
    return true;
  }
  return _pa_os_is_mapped(head, sizeof *head);
}

/* The runtime, generation and flags of a header as one word: a live
 * object of runtime `id` has these bits of it. */
static uint32_t state_word(const gc_head *head) {
  uint32_t word;
  memcpy(&word, &head->runtime, sizeof word);
  return word;
}
static uint32_t state_expected(const pa_gc_runtime *rt) {
  gc_head model = {.runtime = rt->id, .flags = FLAG_ALIVE};
  return state_word(&model);
}
static uint32_t state_mask(void) {
  gc_head model = {.runtime = UINT16_MAX, .flags = FLAG_ALIVE_MASK};
  return state_word(&model);
}

/* A referent traverse reported is a live object of this runtime (the
 * common case, its arena seen already, is tested inline by
 * visit_subtract); a bad one is reported (once: report_bad in the first
 * pass) and ignored. */
__attribute__((noinline)) static bool referent_checked_slow(pa_gc_runtime *rt, void *referent,
                                                           bool report_bad) {
  if (referent == NULL) return false;
  gc_head *head = head_of(referent);
  if (head_readable(rt, head) && (state_word(head) & state_mask()) == state_expected(rt))
    return true;
  rt->bad_referent = true;
  if (report_bad) {
    char detail[160];
    snprintf(detail, sizeof detail, "traverse reported %p, which is not a live object of this runtime",
             referent);
    report("pa_gc_collect", rt, detail);
  }
  return false;
}

__attribute__((noinline)) static void report_overcount(void *referent) {
  report("pa_gc_collect", referent, "traverse reports more references to it than its count");
}

static void examine(gc_head *head) {
  head->gc_refs = head->refcnt;
  head->flags = (uint8_t)((head->flags & ~FLAG_UNREACHABLE) | FLAG_COLLECTING);
}

struct subtract_args {
  pa_gc_runtime *rt;
  uint32_t expected; /* state_expected(rt) */
  /* objects of generations up to this one are under examination, and are
   * examined when first met; -1: all were examined beforehand */
  int generation;
};

static inline void subtract_reference(gc_head *head, const struct subtract_args *args) {
  if (!(head->flags & FLAG_COLLECTING)) {
    if ((int)head->generation > args->generation) return;
    examine(head);
  }
  if (__builtin_expect(head->gc_refs == 0, 0)) {
    report_overcount(object_of(head));
    return;
  }
  head->gc_refs--;
}

__attribute__((noinline)) static void visit_subtract_checked(void *referent, void *arg) {
  const struct subtract_args *args = arg;
  if (referent_checked_slow(args->rt, referent, true))
    subtract_reference(head_of(referent), args);
}

/* Every call from here is a tail call, so the common case (a referent in
 * the arena seen last) runs with no stack frame: it is the collector's
 * most frequent step. */
static void visit_subtract(void *referent, void *arg) {
  const struct subtract_args *args = arg;
  gc_head *head = head_of(referent);
  if (__builtin_expect(((uintptr_t)head >> PA_ARENA_BITS) != args->rt->readable_arena ||
                           (state_word(head) & state_mask()) != args->expected,
                       0)) {
    visit_subtract_checked(referent, arg);
    return;
  }
  subtract_reference(head, args);
}

/* Steps 1-2: every object of list (generations up to `generation`, or -1:
 * whatever it holds) gets its count of outside references in gc_refs; its
 * prev links are lost until move_unreachable.  Returns how many there
 * are.  Objects are examined when the walk or a reference first meets
 * them, so the list is walked once. */
static size_t count_outside_references(pa_gc_runtime *rt, gc_head *list, int generation) {
  struct subtract_args args = {rt, state_expected(rt), generation};
  size_t examined = 0;
  rt->readable_arena = UINTPTR_MAX; /* none yet */
  if (generation < 0)
    for (gc_head *h = list->next; h != list; h = h->next) examine(h);
  for (gc_head *h = list->next; h != list; h = h->next, examined++) {
    if (!(h->flags & FLAG_COLLECTING)) examine(h);
    h->type->traverse(object_of(h), visit_subtract, &args);
  }
  return examined;
}

struct reach_args {
  pa_gc_runtime *rt;
  gc_head *young; /* move_unreachable's list, reachable objects at its tail */
  /* the subtracting pass met a bad referent: check each again (the
   * subtracting pass checked, and reported, every referent) */
  bool check;
};

/* A reachable object reaches this one.  Already scanned (no longer
 * COLLECTING) or outside the examined set: nothing to do.  Moved to the
 * unreachable list: back it comes, to the tail of young, to be scanned in
 * turn.  Not scanned yet: the scan will find it reachable. */
static inline void reach(gc_head *head, const struct reach_args *args) {
  if (!(head->flags & FLAG_COLLECTING)) return;
  if (head->flags & FLAG_UNREACHABLE) {
    head->flags &= (uint8_t)~FLAG_UNREACHABLE;
    head->refcnt--; /* move_unreachable's hold */
    list_unlink(head);
    /* young's tail is the walk's last object: its prev is a count, but
     * appending writes only its next */
    gc_head *last = args->young->prev;
    last->next = head;
    head->next = args->young;
    args->young->prev = head;
    head->gc_refs = 1;
  } else if (head->gc_refs == 0) {
    head->gc_refs = 1;
  }
}

__attribute__((noinline)) static void visit_reachable_checked(void *referent, void *arg) {
  const struct reach_args *args = arg;
  if (referent_checked_slow(args->rt, referent, false)) reach(head_of(referent), args);
}

/* Tail calls only, as visit_subtract. */
static void visit_reachable(void *referent, void *arg) {
  const struct reach_args *args = arg;
  if (__builtin_expect(args->check, 0)) {
    visit_reachable_checked(referent, arg);
    return;
  }
  if (referent != NULL) reach(head_of(referent), args);
}

/* Step 3 (CPython's move_unreachable): one walk of young; what it leaves
 * there is reachable, marked generation `survivor_generation`, with its
 * prev links back; the rest is in unreachable, marked FLAG_UNREACHABLE and
 * GC_EXAMINED, and held (a count more), so that clearing the garbage
 * never takes a count to zero.  Returns how many are reachable;
 * *finalizers tells whether an object found unreachable has a finalizer
 * still to run. */
static size_t move_unreachable(pa_gc_runtime *rt, gc_head *young, gc_head *unreachable,
                               unsigned survivor_generation, bool *finalizers) {
  struct reach_args args = {rt, young, rt->bad_referent};
  size_t reachable = 0;
  bool finalize = false;
  gc_head *prev = young;
  gc_head *h = young->next;
  while (h != young) {
    if (h->gc_refs > 0) {
      /* traverse may append to young after h: h->next is read after */
      h->type->traverse(object_of(h), visit_reachable, &args);
      h->prev = prev;
      h->flags &= (uint8_t)~FLAG_COLLECTING;
      h->generation = (uint8_t)survivor_generation;
      prev = h;
      reachable++;
    } else {
      prev->next = h->next;
      h->flags |= FLAG_UNREACHABLE;
      h->generation = GC_EXAMINED;
      h->refcnt++;
      finalize |= h->type->finalize != NULL && !(h->flags & FLAG_FINALIZED);
      list_append(h, unreachable);
    }
    h = prev->next;
  }
  young->prev = prev;
  *finalizers = finalize;
  return reachable;
}

/* Step 4: runs the finalizers still to run; the objects still alive
 * afterwards are left in `finalized`.  Holds go first, as finalizers may
 * drop the last outside references; the objects not moved yet keep
 * FLAG_UNREACHABLE: a finalizer dropping one to zero leaves it to the
 * collector, which examines it again with the others. */
static void run_finalizers(pa_gc_runtime *rt, gc_head *unreachable, gc_head *finalized) {
  for (gc_head *h = unreachable->next; h != unreachable; h = h->next) h->refcnt--;
  while (!list_empty(unreachable)) {
    gc_head *h = unreachable->next;
    list_move(h, finalized);
    h->flags &= (uint8_t)~FLAG_UNREACHABLE;
    if (h->type->finalize == NULL || (h->flags & FLAG_FINALIZED)) continue;
    h->refcnt++;
    h->flags |= FLAG_FINALIZED;
    rt->stats.finalized++;
    h->type->finalize(object_of(h));
    pa_decref(object_of(h));
  }
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

/* Step 5.  Clearing drops the references between garbage objects (held,
 * so none is freed while others may still point to it) and those to the
 * outside (which may free outside objects now); then the garbage is freed.
 * An object counted more than its hold was stored somewhere by a clear:
 * cleared but alive, it joins generation `older`. */
static void clear_all(gc_head *held) {
  /* clear is NULL only for a type that changed (or a new one at a freed
   * type's address) after pa_gc_new checked it: its objects are kept.
   * The walk is backward: the pass before built the list front to back,
   * so its tail is what the cache holds.  Walking a young generation a
   * little larger than the L1 cache (the rings benchmark's: 700 blocks of
   * 56 bytes) in one direction every time misses on every line;
   * alternating keeps the lines last touched (on the rings, L1 misses 89 to 75 million, cycles
   * -3.5%). */
  for (gc_head *h = held->prev; h != held; h = h->prev)
    if (h->type->clear) h->type->clear(object_of(h));
}

static void delete_garbage(pa_gc_runtime *rt, gc_head *garbage, unsigned older) {
  clear_all(garbage);
  gc_head *h = garbage->next;
  while (h != garbage) {
    gc_head *next = h->next;
    if (h->refcnt <= 1) { /* 0: some clear dropped a reference too many */
      rt->stats.freed_by_collector++;
      block_free(h);
    } else {
      h->refcnt--;
      h->flags &= (uint8_t)~(FLAG_COLLECTING | FLAG_UNREACHABLE);
      h->generation = (uint8_t)older;
      list_append(h, &rt->generations[older]);
      rt->sizes[older]++;
    }
    h = next;
  }
  list_init(garbage);
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Steps 4-5 on what step 3 found unreachable; returns how many finalizers
 * resurrected. */
static size_t free_unreachable(pa_gc_runtime *rt, gc_head *unreachable, bool finalizers,
                               unsigned older) {
  if (!finalizers) {
    delete_garbage(rt, unreachable, older);
    return 0;
  }
  gc_head finalized, garbage;
  list_init(&finalized);
  list_init(&garbage);
  run_finalizers(rt, unreachable, &finalized);
  count_outside_references(rt, &finalized, -1);
  bool unused;
  size_t resurrected = move_unreachable(rt, &finalized, &garbage, older, &unused);
  resurrected_hold(rt, &finalized);
  list_merge(&finalized, &rt->generations[older]);
  rt->sizes[older] += resurrected;
  delete_garbage(rt, &garbage, older);
  return resurrected;
}

static size_t threshold_in_use(const pa_gc_runtime *rt, int gen) {
  return (size_t)rt->thresholds[gen] << rt->backoff[gen];
}

/* Automatic collection may run at the next allocation once counts[0]
 * passes this. */
static void young_limit_update(pa_gc_runtime *rt) {
  rt->young_limit = rt->enabled ? threshold_in_use(rt, 0) : SIZE_MAX;
}

/* A collection that found (next to) no garbage was pure cost: the objects
 * it examined were live data, still being built when young (a program
 * loading a large structure, binary-trees), which every collection would
 * examine again until they reach the oldest generation.  So the generation
 * waits twice as long before the next one, and goes back to its threshold
 * as soon as one finds garbage in earnest.  CPython's answer to the same
 * cost is to have programs call gc.disable() or gc.freeze() while they
 * build. */
static void backoff_update(pa_gc_runtime *rt, unsigned gen, size_t found, size_t examined) {
  if (found > 0 && found >= examined / BACKOFF_YIELD)
    rt->backoff[gen] = 0;
  else if (rt->backoff[gen] < BACKOFF_MAX)
    rt->backoff[gen]++;
  young_limit_update(rt);
}

static bool collection_may_start(const pa_gc_runtime *rt) {
  return !rt->collecting && !rt->in_callback;
}

static void callback_run(pa_gc_runtime *rt, const struct pa_gc_event *event) {
  if (rt->callback == NULL) return;
  rt->in_callback = true;
  rt->callback(rt, event, rt->callback_arg);
  rt->in_callback = false;
}

static size_t collect(pa_gc_runtime *rt, unsigned gen) {
  callback_run(rt, &(struct pa_gc_event){.phase = PA_GC_PHASE_START, .generation = (int)gen});
  uint64_t start = now_ns();
  pa_gc_resurrected_clear(rt);
  rt->collecting = true;
  rt->bad_referent = false;
  size_t freed_before = rt->stats.freed_by_collector;
  unsigned older = gen + 1 < PA_GC_GENERATIONS ? gen + 1 : gen;
  gc_head young, unreachable;
  list_init(&young);
  list_init(&unreachable);
  for (unsigned i = 0; i <= gen; i++) {
    list_merge(&rt->generations[i], &young);
    rt->sizes[i] = 0;
  }
  size_t examined = count_outside_references(rt, &young, (int)gen);
  bool finalizers;
  size_t survivors = move_unreachable(rt, &young, &unreachable, older, &finalizers);
  list_merge(&young, &rt->generations[older]);
  rt->sizes[older] += survivors;
  size_t resurrected = free_unreachable(rt, &unreachable, finalizers, older);

  size_t collected = rt->stats.freed_by_collector - freed_before;
  if (gen == PA_GC_GENERATIONS - 1) rt->long_lived_total = rt->sizes[gen];
  backoff_update(rt, gen, collected + resurrected, examined);
  for (unsigned i = 0; i <= gen; i++) rt->counts[i] = 0;
  if (gen + 1 < PA_GC_GENERATIONS) rt->counts[gen + 1]++;
  struct pa_gc_generation_stats *g = &rt->stats.generations[gen];
  g->collections++;
  g->examined += examined;
  g->collected += collected;
  g->resurrected += resurrected;
  rt->collecting = false;
  struct pa_gc_event stop = {PA_GC_PHASE_STOP, (int)gen, collected, resurrected, now_ns() - start};
  g->nanoseconds += stop.nanoseconds;
  callback_run(rt, &stop);
  return collected;
}

/* The oldest generation over its threshold, as CPython chooses; the
 * oldest only once it has grown by a quarter since its last collection
 * (CPython counts what joined it; what died since by counting is not
 * counted here, so a program whose old objects die young does not walk
 * its live heap for them). */
static void collect_generations(pa_gc_runtime *rt) {
  for (int gen = PA_GC_GENERATIONS - 1; gen >= 0; gen--) {
    if (rt->counts[gen] <= threshold_in_use(rt, gen)) continue;
    if (gen == PA_GC_GENERATIONS - 1 &&
        rt->sizes[gen] < rt->long_lived_total + rt->long_lived_total / 4)
      continue;
    collect(rt, (unsigned)gen);
    return;
  }
}

PA_ENTRY size_t pa_gc_collect(pa_gc_runtime *rt, int gen) {
  if (rt == NULL || !collection_may_start(rt)) return 0;
  if (gen < 0 || gen >= PA_GC_GENERATIONS) gen = PA_GC_GENERATIONS - 1;
  return collect(rt, (unsigned)gen);
}

void pa_gc_callback_set(pa_gc_runtime *rt, pa_gc_callback callback, void *arg) {
  rt->callback = callback;
  rt->callback_arg = arg;
}

void pa_gc_enable(pa_gc_runtime *rt) {
  rt->enabled = true;
  young_limit_update(rt);
}
int pa_gc_disable(pa_gc_runtime *rt) {
  int was = rt->enabled;
  rt->enabled = false;
  young_limit_update(rt);
  return was;
}
int pa_gc_is_enabled(const pa_gc_runtime *rt) { return rt->enabled; }

/* Moves every object of list `from` to list `to`, setting its generation
 * to `to`; returns how many moved. */
static size_t generation_move(pa_gc_runtime *rt, unsigned from, unsigned to) {
  gc_head *list = &rt->generations[from];
  for (gc_head *h = list->next; h != list; h = h->next) h->generation = (uint8_t)to;
  list_merge(list, &rt->generations[to]);
  size_t moved = rt->sizes[from];
  rt->sizes[to] += moved;
  rt->sizes[from] = 0;
  return moved;
}

/* The generations end empty, so what counts towards their next
 * collections starts again. */
size_t pa_gc_freeze(pa_gc_runtime *rt) {
  if (rt == NULL || rt->collecting) return 0;
  size_t moved = 0;
  for (unsigned gen = 0; gen < PA_GC_GENERATIONS; gen++) {
    moved += generation_move(rt, gen, GC_PERMANENT);
    rt->counts[gen] = 0;
  }
  return moved;
}

size_t pa_gc_unfreeze(pa_gc_runtime *rt) {
  if (rt == NULL || rt->collecting) return 0;
  return generation_move(rt, GC_PERMANENT, PA_GC_GENERATIONS - 1);
}

size_t pa_gc_freeze_count(const pa_gc_runtime *rt) { return rt ? rt->sizes[GC_PERMANENT] : 0; }

/* ---- Objects --------------------------------------------------------------- */

/* Zeroes n bytes: up to 64 with two overlapping fixed-size stores each,
 * which the compiler inlines (a call to memset costs more than an object
 * of a few words). */
static inline __attribute__((always_inline)) void object_zero(char *p, size_t n) {
  if (n >= 32 && n <= 64) {
    memset(p, 0, 32);
    memset(p + n - 32, 0, 32);
  } else if (n >= 16 && n < 32) {
    memset(p, 0, 16);
    memset(p + n - 16, 0, 16);
  } else if (n >= 8 && n < 16) {
    memset(p, 0, 8);
    memset(p + n - 8, 0, 8);
  } else {
    memset(p, 0, n);
  }
}

/* The block for a header and an object of size bytes in all: a multiple of
 * 16, so the object is 16-byte aligned, as malloc's results are (the
 * caller lays it out; poolalloc cannot see what it holds).  size is at most
 * SIZE_MAX - 15. */
static inline size_t gc_block_size(size_t size) { return (size + 15) & ~(size_t)15; }

/* A new block's object: zeroed, counted once, tracked in generation 0
 * if its type has references. */
static void *object_start(pa_gc_runtime *rt, gc_head *head, const pa_gc_type *type,
                          size_t object_size) {
  object_zero(object_of(head), object_size);
  head->type = type;
  head->refcnt = 1;
  head->runtime = rt->id;
  head->flags = FLAG_ALIVE;
  rt->stats.created++;
  if (type->traverse == NULL) {
    head->generation = GC_UNTRACKED;
    return object_of(head);
  }
  head->generation = 0;
  list_append(head, &rt->generations[0]);
  rt->sizes[0]++;
  rt->counts[0]++;
  return object_of(head);
}

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
  if (type->traverse && rt->counts[0] > rt->young_limit && collection_may_start(rt))
    collect_generations(rt);
  if (size > SIZE_MAX - 15) {
    errno = ENOMEM;
    return NULL;
  }
  gc_head *head = pa_malloc_fast(PA_DOMAIN_OBJ, gc_block_size(size));
  if (head == NULL) return NULL;
  rt->checked_type = type; /* pa_gc_new may take it straight */
  return object_start(rt, head, type, size - sizeof *head);
}

/* The common case, an object of the type the runtime's last object was
 * made of (checked then: clear with traverse, no overflow) with no
 * collection due, checks nothing more. */
PA_ENTRY void *pa_gc_new(pa_gc_runtime *rt, const pa_gc_type *type) {
  if (__builtin_expect(rt == NULL || type != rt->checked_type || rt->counts[0] > rt->young_limit, 0))
    return pa_gc_new_var(rt, type, 0);
  gc_head *head = pa_malloc_fast(PA_DOMAIN_OBJ, gc_block_size(sizeof *head + type->size));
  if (head == NULL) return NULL;
  return object_start(rt, head, type, type->size);
}

/* ---- Runtimes -------------------------------------------------------------- */

static const unsigned default_thresholds[PA_GC_GENERATIONS] = {700, 10, 10};

/* config's thresholds (CPython's with none given); false if some, not all,
 * are 0. */
static bool config_thresholds(const struct pa_gc_config *config,
                              unsigned thresholds[PA_GC_GENERATIONS]) {
  bool any = false, all = true;
  for (int i = 0; i < PA_GC_GENERATIONS; i++) {
    thresholds[i] = config ? config->thresholds[i] : 0;
    any |= thresholds[i] != 0;
    all &= thresholds[i] != 0;
  }
  if (!any) memcpy(thresholds, default_thresholds, sizeof default_thresholds);
  return all || !any;
}

PA_ENTRY pa_gc_runtime *pa_gc_runtime_create(const struct pa_gc_config *config) {
  unsigned thresholds[PA_GC_GENERATIONS];
  if (!config_thresholds(config, thresholds)) {
    errno = EINVAL;
    return NULL;
  }
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
  young_limit_update(rt);
  for (int i = 0; i <= GC_PERMANENT; i++) list_init(&rt->generations[i]);
  return rt;
}

/* New thresholds start without backoff: the program chose them. */
int pa_gc_config_set(pa_gc_runtime *rt, const struct pa_gc_config *config) {
  unsigned thresholds[PA_GC_GENERATIONS];
  if (rt == NULL || !config_thresholds(config, thresholds)) {
    errno = EINVAL;
    return -1;
  }
  memcpy(rt->thresholds, thresholds, sizeof thresholds);
  memset(rt->backoff, 0, sizeof rt->backoff);
  young_limit_update(rt);
  return 0;
}

void pa_gc_config_get(const pa_gc_runtime *rt, struct pa_gc_config *out) {
  memcpy(out->thresholds, rt->thresholds, sizeof out->thresholds);
}

void pa_gc_counts(const pa_gc_runtime *rt, size_t counts[PA_GC_GENERATIONS]) {
  memcpy(counts, rt->counts, sizeof rt->counts);
}

PA_ENTRY void pa_gc_runtime_destroy(pa_gc_runtime *rt) {
  if (rt == NULL) return;
  pa_gc_resurrected_clear(rt);
  rt->collecting = true;
  gc_head all;
  list_init(&all);
  for (int i = 0; i <= GC_PERMANENT; i++) list_merge(&rt->generations[i], &all);
  /* held and left to the collector, as garbage is (step 5): the clears
   * free only untracked objects */
  for (gc_head *h = all.next; h != &all; h = h->next) {
    h->flags |= FLAG_FINALIZED | FLAG_UNREACHABLE;
    h->refcnt++;
  }
  clear_all(&all);
  while (!list_empty(&all)) {
    gc_head *h = all.next;
    list_unlink(h);
    block_free(h);
  }
  pthread_mutex_lock(&runtimes.lock);
  runtimes.by_id[rt->id] = NULL;
  pthread_mutex_unlock(&runtimes.lock);
  pa_mem_free(rt->resurrected);
  pa_mem_free(rt);
}

/* ---- Statistics and inspection -------------------------------------------- */

void pa_gc_stats_get(const pa_gc_runtime *rt, struct pa_gc_stats *out) {
  *out = rt->stats;
  out->objects = out->created - out->freed_by_refcount - out->freed_by_collector;
  out->tracked = rt->sizes[GC_PERMANENT];
  for (int i = 0; i < PA_GC_GENERATIONS; i++) {
    out->generation_sizes[i] = rt->sizes[i];
    out->tracked += rt->sizes[i];
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

struct referrer_search {
  const void *target;
  bool found;
};

static void visit_find(void *referent, void *arg) {
  struct referrer_search *search = arg;
  if (referent == search->target) search->found = true;
}

/* The objects of lists first..last (of those whose traverse reports
 * `referent`, unless it is NULL) into out[0 .. max-1]; returns how many. */
static size_t objects_listed(const pa_gc_runtime *rt, int first, int last, const void *referent,
                             void **out, size_t max) {
  if (rt->collecting) return 0; /* the lists are being taken apart */
  size_t found = 0;
  for (int i = first; i <= last; i++) {
    const gc_head *list = &rt->generations[i];
    for (gc_head *h = list->next; h != list; h = h->next) {
      if (referent) {
        struct referrer_search search = {referent, false};
        h->type->traverse(object_of(h), visit_find, &search);
        if (!search.found) continue;
      }
      if (found < max) out[found] = object_of(h);
      found++;
    }
  }
  return found;
}

size_t pa_gc_objects(const pa_gc_runtime *rt, int generation, void **out, size_t max) {
  if (rt == NULL || generation < -1 || generation > GC_PERMANENT) {
    errno = EINVAL;
    return 0;
  }
  if (generation < 0) return objects_listed(rt, 0, GC_PERMANENT, NULL, out, max);
  return objects_listed(rt, generation, generation, NULL, out, max);
}

size_t pa_gc_referrers(const pa_gc_runtime *rt, const void *obj, void **out, size_t max) {
  if (rt == NULL || obj == NULL) {
    errno = EINVAL;
    return 0;
  }
  return objects_listed(rt, 0, GC_PERMANENT, obj, out, max);
}

struct referent_list {
  void **out;
  size_t max, found;
};

static void visit_list(void *referent, void *arg) {
  struct referent_list *list = arg;
  if (referent == NULL) return;
  if (list->found < list->max) list->out[list->found] = referent;
  list->found++;
}

size_t pa_gc_referents(const void *obj, void **out, size_t max) {
  if (obj == NULL) {
    errno = EINVAL;
    return 0;
  }
  const gc_head *head = head_of(obj);
  if (!head_alive(head)) {
    pa_gc_misuse((void *)obj, "pa_gc_referents");
    errno = EINVAL;
    return 0;
  }
  if (head->type->traverse == NULL) return 0;
  struct referent_list list = {out, max, 0};
  head->type->traverse((void *)obj, visit_list, &list);
  return list.found;
}
