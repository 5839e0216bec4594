/* CPython's cycle collector written into the benchmark for its one type
 * (gc_bench.c's USE_INLINE variant): what the algorithm costs with none of
 * a library's price.  It mirrors src/gc.c's collection (the same steps as
 * CPython's Modules/gcmodule.c) on purpose, as a second copy that exists
 * only as this benchmark variant: the library never uses it, and its
 * figures are in bench/README.md beside the library collector's.  No
 * function pointers (traverse and clear are the two fields), no checks, no
 * statistics, no finalizers; blocks from
 * pa_malloc/pa_free.  Same header size as src/gc.c's (32 bytes), same
 * thresholds (700/10/10) and the same rule for the oldest generation
 * (collected once grown by a quarter); no backoff.  It answers one
 * question: how fast can CPython's algorithm run on these workloads at
 * all?  Included by gc_bench.c only. */
#include <stdint.h>

struct inline_head {
  struct inline_head *next, *prev;
  uintptr_t gc_refs;
  uint32_t refcnt;
  uint8_t generation, flags;
};
enum { INLINE_COLLECTING = 1, INLINE_UNREACHABLE = 2, INLINE_GENERATIONS = 3 };

static struct {
  struct inline_head generations[INLINE_GENERATIONS];
  size_t counts[INLINE_GENERATIONS], sizes[INLINE_GENERATIONS], long_lived;
  size_t blocks; /* allocated and not freed: bench/gc.sh checks 0 at the end */
} inline_gc;

static const size_t inline_thresholds[INLINE_GENERATIONS] = {700, 10, 10};

static struct inline_head *inline_head_of(struct node *n) { return (struct inline_head *)n - 1; }
static struct node *inline_node_of(struct inline_head *h) { return (struct node *)(h + 1); }

static void inline_list_init(struct inline_head *l) { l->next = l->prev = l; }
static void inline_list_append(struct inline_head *h, struct inline_head *l) {
  h->prev = l->prev;
  h->next = l;
  l->prev->next = h;
  l->prev = h;
}
static void inline_list_unlink(struct inline_head *h) {
  h->prev->next = h->next;
  h->next->prev = h->prev;
}
static void inline_list_merge(struct inline_head *from, struct inline_head *to) {
  if (from->next == from) return;
  to->prev->next = from->next;
  from->next->prev = to->prev;
  to->prev = from->prev;
  from->prev->next = to;
  inline_list_init(from);
}

static void inline_decref(struct node *n);

/* Count at zero: untracked, references dropped, block freed. */
static void inline_dealloc(struct inline_head *h) {
  inline_list_unlink(h);
  inline_gc.sizes[h->generation]--;
  if (inline_gc.counts[0] > 0) inline_gc.counts[0]--;
  struct node *n = inline_node_of(h), *a = n->a, *b = n->b;
  pa_free(h);
  inline_gc.blocks--;
  inline_decref(a);
  inline_decref(b);
}

static void inline_incref(struct node *n) { inline_head_of(n)->refcnt++; }
static void inline_decref(struct node *n) {
  if (n == NULL) return;
  struct inline_head *h = inline_head_of(n);
  if (--h->refcnt == 0 && !(h->flags & INLINE_UNREACHABLE)) inline_dealloc(h);
}

static void inline_subtract(struct node *n) {
  if (n == NULL) return;
  struct inline_head *h = inline_head_of(n);
  if (h->flags & INLINE_COLLECTING) h->gc_refs--;
}

/* A reachable object reaches n: one moved to the unreachable list comes
 * back to young's tail, to be scanned in turn. */
static void inline_reach(struct node *n, struct inline_head *young) {
  if (n == NULL) return;
  struct inline_head *h = inline_head_of(n);
  if (!(h->flags & INLINE_COLLECTING)) return;
  if (h->flags & INLINE_UNREACHABLE) {
    h->flags &= (uint8_t)~INLINE_UNREACHABLE;
    h->refcnt--;
    inline_list_unlink(h);
    inline_list_append(h, young);
    h->gc_refs = 1;
  } else if (h->gc_refs == 0) {
    h->gc_refs = 1;
  }
}

/* Counts copied, internal references subtracted, reachable objects kept
 * (move_unreachable), the rest held, cleared, freed. */
static void inline_collect(int gen) {
  int older = gen + 1 < INLINE_GENERATIONS ? gen + 1 : gen;
  struct inline_head young, unreachable;
  inline_list_init(&young);
  inline_list_init(&unreachable);
  for (int i = 0; i <= gen; i++) {
    inline_list_merge(&inline_gc.generations[i], &young);
    inline_gc.sizes[i] = 0;
  }
  for (struct inline_head *h = young.next; h != &young; h = h->next) {
    h->gc_refs = h->refcnt;
    h->flags |= INLINE_COLLECTING;
  }
  for (struct inline_head *h = young.next; h != &young; h = h->next) {
    inline_subtract(inline_node_of(h)->a);
    inline_subtract(inline_node_of(h)->b);
  }
  size_t survivors = 0;
  for (struct inline_head *h = young.next, *next; h != &young; h = next) {
    if (h->gc_refs > 0) {
      inline_reach(inline_node_of(h)->a, &young);
      inline_reach(inline_node_of(h)->b, &young);
      next = h->next; /* read after reach, which may append after h */
      h->flags &= (uint8_t)~INLINE_COLLECTING;
      h->generation = (uint8_t)older;
      survivors++;
    } else {
      next = h->next;
      h->flags |= INLINE_UNREACHABLE;
      h->refcnt++;
      inline_list_unlink(h);
      inline_list_append(h, &unreachable);
    }
  }
  inline_list_merge(&young, &inline_gc.generations[older]);
  inline_gc.sizes[older] += survivors;
  for (struct inline_head *h = unreachable.prev; h != &unreachable; h = h->prev) {
    struct node *n = inline_node_of(h), *a = n->a, *b = n->b;
    n->a = n->b = NULL;
    inline_decref(a);
    inline_decref(b);
  }
  for (struct inline_head *h = unreachable.next, *next; h != &unreachable; h = next) {
    next = h->next;
    pa_free(h);
    inline_gc.blocks--;
  }
  if (gen == INLINE_GENERATIONS - 1) inline_gc.long_lived = inline_gc.sizes[gen];
  for (int i = 0; i <= gen; i++) inline_gc.counts[i] = 0;
  if (gen + 1 < INLINE_GENERATIONS) inline_gc.counts[gen + 1]++;
}

static void inline_init(void) {
  for (int i = 0; i < INLINE_GENERATIONS; i++) inline_list_init(&inline_gc.generations[i]);
}

static void inline_collect_generations(void) {
  for (int gen = INLINE_GENERATIONS - 1; gen >= 0; gen--) {
    if (inline_gc.counts[gen] <= inline_thresholds[gen]) continue;
    if (gen == INLINE_GENERATIONS - 1 &&
        inline_gc.sizes[gen] < inline_gc.long_lived + inline_gc.long_lived / 4)
      continue;
    inline_collect(gen);
    return;
  }
}

static struct node *inline_new(void) {
  if (inline_gc.counts[0] > inline_thresholds[0]) inline_collect_generations();
  struct inline_head *h = pa_malloc(sizeof *h + sizeof(struct node));
  if (h == NULL) abort();
  inline_gc.blocks++;
  h->refcnt = 1;
  h->flags = 0;
  h->generation = 0;
  inline_list_append(h, &inline_gc.generations[0]);
  inline_gc.sizes[0]++;
  inline_gc.counts[0]++;
  struct node *n = inline_node_of(h);
  n->a = n->b = NULL;
  return n;
}
