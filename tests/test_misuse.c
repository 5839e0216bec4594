/* The misuse table of docs/hardening.md, row by row: each misuse runs in a child
 * process, plainly and under the debug hooks (POOLALLOC_DEBUG=1), and what
 * the child did (its exit status or signal, and its report) must be what
 * the table says for this build: the default one or the secure one
 * (-DPOOLALLOC_SECURE=ON).  A child exits 3 when it saw the damage go
 * unnoticed (a block handed out twice), so the table's "not detected" rows
 * are measured too.  Not built under the sanitizers: their runtimes catch
 * some of these first.
 *
 *   test_misuse          every row, every mode
 *   test_misuse NAME     one misuse (a child)
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "inline.h"

enum { SIZE = 64, UNNOTICED = 3 };

/* A 64-byte block that is the first of its pool but not of its arena (so
 * the byte before it is mapped: the last of the pool before), behind the
 * debug hooks' 48-byte header when they are on; or NULL. */
static unsigned char *first_block_of_a_pool(void) {
  for (int i = 0; i < 100000; i++) {
    unsigned char *p = pa_malloc(SIZE);
    if ((uintptr_t)p - (uintptr_t)pa_pool_of(p)->start < SIZE &&
        ((uintptr_t)p & (PA_ARENA_SIZE - 1)) >= PA_POOL_SIZE)
      return p;
  }
  return NULL;
}

static int double_free(void) {
  unsigned char *a = pa_malloc(SIZE);
  pa_free(a);
  pa_free(a);
  unsigned char *x = pa_malloc(SIZE), *y = pa_malloc(SIZE);
  return x == y ? UNNOTICED : 0;
}

static void *free_elsewhere(void *p) {
  pa_free(p);
  return NULL;
}

/* The first free on another thread, the second here. */
static int double_free_across_threads(void) {
  unsigned char *a = pa_malloc(SIZE);
  pthread_t thread;
  pthread_create(&thread, NULL, free_elsewhere, a);
  pthread_join(thread, NULL);
  pa_free(a);
  return 0;
}

static int invalid_free(void) {
  unsigned char *a = pa_malloc(SIZE);
  pa_free(a + 16);
  unsigned char *x = pa_malloc(SIZE);
  return x == a + 16 ? UNNOTICED : 0; /* overlaps the live block a */
}

/* One byte past the requested size, which is the block's size: into the
 * next block, free and on the free list (secure builds), or never carved. */
static int overflow_by_one(void) {
  unsigned char *a = pa_malloc(SIZE);
  pa_pool *run = pa_pool_of(a);
  if ((uintptr_t)a - (uintptr_t)run->start + 2 * SIZE > pa_pool_bytes(run)) a = pa_malloc(SIZE);
  a[SIZE] ^= 0x5a;
  size_t count = pa_pool_bytes(pa_pool_of(a)) / pa_pool_of(a)->block_size + 1; /* the whole run */
  void **others = pa_malloc(count * sizeof *others);
  for (size_t i = 0; i < count; i++) others[i] = pa_malloc(SIZE);
  pa_free(a);
  for (size_t i = 0; i < count; i++) pa_free(others[i]);
  pa_free(others);
  return 0;
}

static int underflow_by_one(void) {
  unsigned char *a = first_block_of_a_pool();
  if (a == NULL) return 2;
  a[-1] ^= 0x40;
  pa_free(a);
  return 0;
}

/* The freed block's first word (its free-list link) overwritten, then the
 * block and the one its link names are allocated. */
static int use_after_free(void) {
  unsigned char *a = pa_malloc(SIZE);
  pa_free(a);
  memset(a, 0x41, 8);
  unsigned char *x = pa_malloc(SIZE), *y = pa_malloc(SIZE);
  return x == y ? UNNOTICED : 0;
}

/* A large block freed twice: its span waits in the cache, marked free. */
static int double_free_large(void) {
  unsigned char *a = pa_malloc(PA_LARGE_REQUEST_THRESHOLD + 1);
  pa_free(a);
  pa_free(a);
  unsigned char *x = pa_malloc(PA_LARGE_REQUEST_THRESHOLD + 1);
  unsigned char *y = pa_malloc(PA_LARGE_REQUEST_THRESHOLD + 1);
  return x == y ? UNNOTICED : 0;
}

static int wrong_domain(void) {
  void *p = pa_obj_malloc(SIZE);
  pa_mem_free(p);
  return 0;
}

static int foreign_pointer(void) {
  static char not_from_an_allocator[64];
  pa_free(not_from_an_allocator + 16);
  return 0;
}

/* Every way to ask for too much: NULL with ENOMEM (EINVAL for a bad
 * alignment), nothing lost. */
static int huge_sizes(void) {
  int wrong = 0;
  errno = 0;
  wrong += pa_malloc(SIZE_MAX) != NULL || errno != ENOMEM;
  errno = 0;
  wrong += pa_malloc(PTRDIFF_MAX) != NULL || errno != ENOMEM;
  errno = 0;
  wrong += pa_calloc(SIZE_MAX / 2 + 1, 2) != NULL || errno != ENOMEM;
  errno = 0;
  wrong += pa_obj_calloc(1u << 31, 1u << 31) != NULL || errno != ENOMEM;
  unsigned char *p = pa_malloc(SIZE);
  memset(p, 7, SIZE);
  errno = 0;
  wrong += pa_realloc(p, SIZE_MAX - 8) != NULL || errno != ENOMEM;
  for (int i = 0; i < SIZE; i++) wrong += p[i] != 7;
  errno = 0;
  wrong += pa_aligned_alloc(SIZE_MAX / 2 + 1, 16) != NULL || errno == 0;
  errno = 0;
  wrong += pa_aligned_alloc(24, 16) != NULL || errno != EINVAL;
  void *out = p;
  wrong += pa_posix_memalign(&out, 64, SIZE_MAX) != ENOMEM || out != p;
  pa_free(p);
  return wrong ? 1 : 0;
}

static const struct misuse {
  const char *name;
  int (*run)(void);
} misuses[] = {
    {"double_free", double_free},
    {"double_free_across_threads", double_free_across_threads},
    {"double_free_large", double_free_large},
    {"invalid_free", invalid_free},
    {"overflow_by_one", overflow_by_one},
    {"underflow_by_one", underflow_by_one},
    {"use_after_free", use_after_free},
    {"wrong_domain", wrong_domain},
    {"foreign_pointer", foreign_pointer},
    {"huge_sizes", huge_sizes},
};

/* What a child must do: exit with `code`, or die of `signal`; and write
 * `report` (or nothing when it is NULL). */
struct outcome {
  int code, signal;
  const char *report;
};
#define EXITS(n) {(n), 0, NULL}
#define ABORTS(text) {0, SIGABRT, (text)}
#define REPORTS(text) {0, 0, (text)}

struct row {
  const char *name;
  struct outcome plain, debug;
};

/* docs/hardening.md's table.  Under the debug hooks the hooks see each misuse
 * before the layers below (in either build). */
static const struct row rows[] = {
#if PA_SECURE
    {"double_free", ABORTS("poolalloc: secure: double free of"), ABORTS("poolalloc: debug: double free")},
    {"double_free_across_threads", ABORTS("poolalloc: secure: double free of"),
     ABORTS("poolalloc: debug: double free")},
    {"double_free_large", ABORTS("poolalloc: secure: double free of"),
     ABORTS("poolalloc: debug: double free")},
    {"invalid_free", ABORTS("poolalloc: secure: invalid free of"), ABORTS("poolalloc: debug: invalid free")},
    {"overflow_by_one", ABORTS("poolalloc: secure: corrupted free list of"),
     ABORTS("poolalloc: debug: buffer overflow")},
    {"underflow_by_one", EXITS(0), ABORTS("poolalloc: debug: buffer underflow")},
    {"use_after_free", ABORTS("poolalloc: secure: corrupted free list of"),
     ABORTS("poolalloc: debug: use after free")},
#else
    {"double_free", EXITS(UNNOTICED), ABORTS("poolalloc: debug: double free")},
    {"double_free_across_threads", EXITS(0), ABORTS("poolalloc: debug: double free")},
    {"double_free_large", REPORTS("not a live block (freed twice?); ignored"),
     ABORTS("poolalloc: debug: double free")},
    {"invalid_free", EXITS(UNNOTICED), ABORTS("poolalloc: debug: invalid free")},
    {"overflow_by_one", EXITS(0), ABORTS("poolalloc: debug: buffer overflow")},
    {"underflow_by_one", EXITS(0), ABORTS("poolalloc: debug: buffer underflow")},
    {"use_after_free", {0, SIGSEGV, NULL}, ABORTS("poolalloc: debug: use after free")},
#endif
    {"wrong_domain", EXITS(0), ABORTS("poolalloc: debug: API mismatch")},
    {"foreign_pointer", ABORTS("free(): invalid pointer"), ABORTS("poolalloc: debug: invalid free")},
    {"huge_sizes", EXITS(0), EXITS(0)},
};

static void check_outcome(const char *argv0, const char *name, bool debug,
                          const struct outcome *want) {
  static char err[16384];
  char *plain_env[] = {NULL};
  char *debug_env[] = {"POOLALLOC_DEBUG=1", NULL};
  int status = check_run_child(argv0, name, debug ? debug_env : plain_env, err, sizeof err);
  bool as_wanted = want->signal ? WIFSIGNALED(status) && WTERMSIG(status) == want->signal
                                : WIFEXITED(status) && WEXITSTATUS(status) == want->code;
  if (want->report ? strstr(err, want->report) == NULL : err[0] != '\0') as_wanted = false;
  CHECK(as_wanted);
  if (!as_wanted)
    fprintf(stderr, "  %s%s: wait status %#x, wanted %s %d and \"%s\"; stderr:\n%s\n", name,
            debug ? " under the debug hooks" : "", status, want->signal ? "signal" : "exit",
            want->signal ? want->signal : want->code, want->report ? want->report : "", err);
}

int main(int argc, char **argv) {
  if (argc == 2) {
    for (size_t i = 0; i < sizeof misuses / sizeof *misuses; i++)
      if (strcmp(argv[1], misuses[i].name) == 0) return misuses[i].run();
    return 127;
  }
  CHECK_EQ(sizeof rows / sizeof *rows, sizeof misuses / sizeof *misuses);
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
    check_outcome(argv[0], rows[i].name, false, &rows[i].plain);
    check_outcome(argv[0], rows[i].name, true, &rows[i].debug);
  }
  return check_done();
}
