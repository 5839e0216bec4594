/* Fault injection walked over every OS mapping of a workload: for each N, a
 * child lets the first N maps succeed and refuses every later one, runs the
 * workload (pools of many classes, calloc, realloc, a free list, a handle
 * table with compactions) checking that each failure is NULL (or 0) with
 * errno ENOMEM and loses no data, then lets the OS give again and runs the
 * workload on to the end with no failure; everything is freed and the
 * statistics must come back to zero with nothing held.  The walk ends at
 * the first N the workload needs no more maps than.
 *
 *   test_faults         the walk
 *   test_faults N       one step (a child)
 */
#include <errno.h>
#include <poolalloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h"

enum { SLOTS = 3000, STEPS = 12000, DONE_WITHOUT_FAILURE = 100 };

struct slot {
  unsigned char *p; /* a pa_malloc'd block, or NULL */
  size_t size;
  unsigned char tag;
  pa_handle handle; /* or a handle object */
  unsigned char *kept; /* or a free-list object (index 0, 40 bytes) */
};
static struct slot slots[SLOTS];
static pa_freelist *list;
static pa_handles *table;
static int failures, wrong_errno, corrupt;

static void fill(unsigned char *p, size_t size, unsigned char tag) { memset(p, tag, size); }

static void check_bytes(const unsigned char *p, size_t size, unsigned char tag) {
  for (size_t i = 0; i < size; i++)
    if (p[i] != tag) {
      corrupt++;
      return;
    }
}

static void failed(void) {
  failures++;
  if (errno != ENOMEM) wrong_errno++;
}

static void slot_release(struct slot *s) {
  if (s->p) {
    check_bytes(s->p, s->size, s->tag);
    pa_free(s->p);
  }
  if (s->handle) {
    check_bytes(pa_handle_get(table, s->handle), s->size, s->tag);
    pa_handle_free(table, s->handle);
  }
  if (s->kept) {
    check_bytes(s->kept, 40, s->tag);
    pa_freelist_free(list, 0, s->kept);
  }
  *s = (struct slot){0};
}

static void step(unsigned long long r, unsigned char tag) {
  struct slot *s = &slots[r % SLOTS];
  size_t size = 1 + (r >> 20) % 600; /* some above 512: medium classes' runs */
  errno = 0;
  switch ((r >> 12) % 6) {
  case 0:
  case 1:
    slot_release(s);
    if ((s->p = pa_malloc(size)) == NULL) return failed();
    break;
  case 2:
    slot_release(s);
    if ((s->p = pa_calloc(1, size)) == NULL) return failed();
    check_bytes(s->p, size, 0);
    break;
  case 3: {
    if (s->p == NULL) return;
    unsigned char *moved = pa_realloc(s->p, size);
    if (moved == NULL) { /* the old block stays, intact */
      check_bytes(s->p, s->size, s->tag);
      return failed();
    }
    s->p = moved;
    break;
  }
  case 4:
    slot_release(s);
    size = size % 300 + 1;
    if ((s->handle = pa_handle_alloc(table, size)) == 0) return failed();
    fill(pa_handle_get(table, s->handle), size, tag);
    s->size = size;
    s->tag = tag;
    return;
  default:
    slot_release(s);
    if ((s->kept = pa_freelist_alloc(list, 0)) == NULL) return failed();
    fill(s->kept, 40, tag);
    s->size = 40;
    s->tag = tag;
    return;
  }
  fill(s->p, size, tag);
  s->size = size;
  s->tag = tag;
}

/* One step of the walk: returns 0, DONE_WITHOUT_FAILURE, or the failing
 * check's number. */
static int walk_step(long allowed_maps) {
  struct pa_freelist_config config = {"faults", 40, 0, 1, 50, PA_DOMAIN_OBJ};
  list = pa_freelist_create(&config);
  table = pa_handles_create();
  if (list == NULL || table == NULL) return 1;
  _pa_os_fail_after(allowed_maps);
  unsigned long long rng = 12345;
  for (int i = 0; i < STEPS; i++) {
    step(check_random(&rng), (unsigned char)i);
    if (i % 2000 == 1999) {
      errno = 0;
      pa_compact(table, NULL);
      if (errno) failed();
    }
  }
  bool injected = _pa_os_failures_injected() > 0;
  if (wrong_errno) return 2;
  if (injected && failures == 0) return 3; /* a refusal nobody saw */
  _pa_os_fail_after(-1);
  int failures_before = failures;
  for (int i = 0; i < STEPS; i++) step(check_random(&rng), (unsigned char)(i + 7));
  if (failures != failures_before) return 4; /* the OS gives again: no failure */
  for (int i = 0; i < SLOTS; i++) slot_release(&slots[i]);
  if (corrupt) return 5;
  pa_freelist_destroy(list);
  pa_handles_destroy(table);
  pa_collect();
  struct pa_stats s;
  pa_stats_get(&s);
  if (check_pool_blocks_in_use() != 0 || s.freelists.kept != 0) return 6;
  if (s.arenas_current != 0) return 7;
  if (s.raw_bytes_in_use != 0) return 8;
  return injected ? 0 : DONE_WITHOUT_FAILURE;
}

int main(int argc, char **argv) {
  if (argc == 2) return walk_step(atol(argv[1]));
  long steps = 0;
  for (long n = 0; n < 1000; n++) {
    char arg[24], report[4096];
    snprintf(arg, sizeof arg, "%ld", n);
    char *env[] = {NULL};
    int status = check_run_child(argv[0], arg, env, report, sizeof report);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code == DONE_WITHOUT_FAILURE) break;
    if (code != 0) fprintf(stderr, "maps allowed %ld: check %d failed\n%s", n, code, report);
    CHECK_EQ(code, 0);
    steps++;
  }
  CHECK(steps > 10); /* the workload needs that many maps at least */
  printf("walked %ld injection points\n", steps);
  return check_done();
}
