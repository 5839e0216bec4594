/*
 * How an interpreter would keep its objects behind handles.
 *
 * A tiny Lisp-like object memory: every heap object (strings, pairs) lives
 * in one handle table, and objects refer to each other by handle, never by
 * address.  Compaction then moves objects without touching any of them:
 * only the table's slots change.  The rule the interpreter follows: between
 * two steps it holds no raw address (a "safe point"), so pa_compact may run
 * there; code that must keep an address across a safe point (a C extension
 * writing from a buffer) pins the object.
 *
 * The program builds a list of 200,000 records, drops 90% of them (as a
 * filter would), and compacts at the next safe point when less than half of
 * the bytes the table holds are live.  It prints what compaction did.
 */
#include <poolalloc.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* A value: a small integer (low bit 1) or an object's handle (low bit 0). */
typedef uint64_t value;
#define NIL ((value)0)
static value from_int(int64_t i) { return (value)i << 1 | 1; }
static int64_t to_int(value v) { return (int64_t)v >> 1; }

enum kind { PAIR, STRING };
struct object {
  enum kind kind;
  uint32_t length; /* STRING */
  value car, cdr;  /* PAIR */
  char text[];     /* STRING */
};

static pa_handles *heap;

/* Addresses are taken for one step and never kept. */
static struct object *deref(value v) { return pa_handle_get(heap, (pa_handle)(v >> 1)); }
static value ref(pa_handle h) { return (value)h << 1; }

static value cons(value car, value cdr) {
  pa_handle h = pa_handle_alloc(heap, sizeof(struct object));
  struct object *o = pa_handle_get(heap, h);
  *o = (struct object){.kind = PAIR, .car = car, .cdr = cdr};
  return ref(h);
}

static value string(const char *text) {
  size_t length = strlen(text);
  pa_handle h = pa_handle_alloc(heap, sizeof(struct object) + length + 1);
  struct object *o = pa_handle_get(heap, h);
  o->kind = STRING;
  o->length = (uint32_t)length;
  memcpy(o->text, text, length + 1);
  return ref(h);
}

/* The interpreter's explicit free (a reference count reaching zero would
 * call it the same way); a list's spine is walked, not recursed into. */
static void drop(value v) {
  while (v != NIL && !(v & 1)) {
    struct object *o = deref(v);
    value car = o->kind == PAIR ? o->car : NIL, cdr = o->kind == PAIR ? o->cdr : NIL;
    pa_handle_free(heap, (pa_handle)(v >> 1));
    drop(car);
    v = cdr;
  }
}

/* (list (cons i "record-i") ...) built front to back. */
static value make_records(int count) {
  value list = NIL;
  for (int i = count - 1; i >= 0; i--) {
    char text[32];
    snprintf(text, sizeof text, "record-%d", i);
    list = cons(cons(from_int(i), string(text)), list);
  }
  return list;
}

/* Keeps the records whose key is a multiple of `keep_every`, dropping the
 * rest, in place. */
static value filter(value list, int keep_every) {
  value head = NIL, *link = &head;
  while (list != NIL) {
    value next = deref(list)->cdr;
    value record = deref(list)->car;
    if (to_int(deref(record)->car) % keep_every == 0) {
      *link = list;
      link = &deref(list)->cdr;
    } else {
      deref(list)->cdr = NIL;
      drop(list);
    }
    list = next;
  }
  *link = NIL;
  return head;
}

/* The table's own heap, from the statistics. */
static struct pa_heap_stats table_heap(void) {
  struct pa_heap_stats heaps[16], none = {0};
  size_t n = pa_stats_heaps(heaps, 16);
  for (size_t i = 0; i < n && i < 16; i++)
    if (heaps[i].handles) return heaps[i];
  return none;
}

static void report(const char *when) {
  struct pa_heap_stats h = table_heap();
  struct pa_stats s;
  pa_stats_get(&s);
  printf("%-22s live %8zu B in %4zu pools (%3.0f%% of their blocks in use); arenas held %zu\n",
         when, h.bytes_in_use, h.pools_used + h.pools_full,
         100.0 * (double)h.bytes_in_use / (double)(h.bytes_in_use + h.bytes_available + 1),
         s.arenas_current);
}

/* A safe point: no raw address is held.  Compact when half the table's
 * pool bytes are free. */
static void safe_point(void) {
  struct pa_heap_stats h = table_heap();
  if (h.bytes_available <= h.bytes_in_use) return;
  struct pa_compact_stats c;
  size_t released = pa_compact(heap, &c);
  printf("pa_compact: moved %zu objects (%zu B), released %zu pools (%zu KiB) and %zu arenas\n",
         c.objects_moved, c.bytes_moved, c.pools_released, released / 1024, c.arenas_released);
}

int main(void) {
  heap = pa_handles_create();
  value records = make_records(200000);
  report("after building:");
  records = filter(records, 10);
  report("after the filter:");

  /* A C extension holds the first record's text across the safe point:
   * pinned, it stays where it is. */
  value first_text = deref(deref(records)->car)->cdr;
  const struct object *pinned = pa_handle_pin(heap, (pa_handle)(first_text >> 1));
  safe_point();
  report("after the safe point:");
  printf("the pinned string \"%s\" stayed at %p: %s\n", pinned->text, (const void *)pinned,
         (const void *)deref(first_text) == (const void *)pinned ? "yes" : "no");
  pa_handle_unpin(heap, (pa_handle)(first_text >> 1));

  int64_t sum = 0, count = 0;
  for (value l = records; l != NIL; l = deref(l)->cdr, count++)
    sum += to_int(deref(deref(l)->car)->car);
  printf("%lld records survive, keys summing to %lld\n", (long long)count, (long long)sum);
  drop(records);
  pa_handles_destroy(heap);
  return 0;
}
