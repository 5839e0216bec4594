/* The debug hooks: every fault they know is provoked in a child process
 * (this program run again with the fault's name and POOLALLOC_DEBUG=1), and
 * the report on its stderr and its abnormal exit are checked.  Correct work
 * under the hooks runs with no report. */
#include <errno.h>
#include <poolalloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

/* Compilers may drop a store they can prove is out of bounds: go through
 * a pointer they cannot see into. */
static void poke(volatile char *at, char value) { *at = value; }

__attribute__((noinline)) static void overflow(void) {
  char *p = pa_malloc(24);
  poke(p + 24, 'X');
  pa_free(p);
}

__attribute__((noinline)) static void underflow(void) {
  char *p = pa_malloc(24);
  poke(p - 1, 'X');
  pa_free(p);
}

__attribute__((noinline)) static void overflow_large(void) {
  char *p = pa_malloc(2000);
  poke(p + 2003, 'X');
  pa_free(p);
}

__attribute__((noinline)) static void double_free(void) {
  char *p = pa_malloc(24);
  pa_free(p);
  pa_free(p);
}

static void invalid_free_stack(void) {
  _Alignas(16) char buffer[128];
  pa_free(buffer + 64);
}

static void invalid_free_interior(void) {
  char *p = pa_malloc(100);
  pa_free(p + 16);
}

static void invalid_free_unmapped(void) { pa_free((void *)(uintptr_t)0x10000); }

static void invalid_realloc(void) {
  _Alignas(16) char buffer[128];
  pa_free(pa_realloc(buffer + 64, 10));
}

static void mismatch_obj_mem(void) { pa_free(pa_obj_malloc(10)); }
static void mismatch_mem_raw(void) { pa_raw_free(pa_malloc(10)); }

__attribute__((noinline, unused)) static void use_after_free(void) {
  char *p = pa_malloc(40);
  pa_free(p);
  poke(p + 5, 'X');
  pa_free(pa_malloc(40)); /* the same block, handed out again */
}

/* Global, so dladdr can name it in the traceback (the test is linked with
 * -rdynamic). */
__attribute__((noinline)) void traced_overflow(void) {
  char *p = pa_malloc(24);
  poke(p + 24, 'X');
  pa_free(p);
}

/* Set up by the API instead of the environment. */
static void api_setup_overflow(void) {
  if (pa_setup_debug_hooks() != 0) _exit(10);
  overflow();
}

/* Too late once memory was allocated: those blocks have no guards. */
static void setup_too_late(void) {
  pa_free(pa_malloc(10));
  int result = pa_setup_debug_hooks();
  _exit(result == -1 && errno == EBUSY ? 0 : 11);
}

static void *free_in_thread(void *p) {
  pa_free(p);
  return NULL;
}

/* Everything a correct program does, checked as it goes; any failure exits
 * non-zero, any report aborts. */
static void clean_work(void) {
  int failures = 0;
#define EXPECT(cond) failures += !(cond)
  unsigned char *p = pa_malloc(30);
  EXPECT(p && ((uintptr_t)p & 15) == 0 && p[0] == PA_DEBUG_CLEAN_BYTE && p[29] == 0xCD);
  EXPECT(pa_usable_size(p) == 30);
  memset(p, 7, 30);
  p = pa_realloc(p, 3000); /* into the raw domain and back */
  EXPECT(p && p[29] == 7 && p[30] == PA_DEBUG_CLEAN_BYTE && pa_usable_size(p) == 3000);
  p = pa_realloc(p, 20);
  EXPECT(p && p[19] == 7);
  pa_free(p);
  unsigned char *z = pa_calloc(100, 3);
  EXPECT(z && z[0] == 0 && z[299] == 0);
  pa_free(z);
  for (size_t alignment = 16; alignment <= 8192; alignment *= 2) {
    void *a = pa_aligned_alloc(alignment, 100);
    EXPECT(a && ((uintptr_t)a & (alignment - 1)) == 0 && pa_usable_size(a) == 100);
    pa_free(a);
  }
  void *m = NULL;
  EXPECT(pa_posix_memalign(&m, 64, 10) == 0 && ((uintptr_t)m & 63) == 0);
  pa_free(m);
  pa_free(pa_malloc(0));
  pa_free(NULL);
  pa_raw_free(pa_raw_realloc(pa_raw_calloc(4, 4), 5000));
  pa_obj_free(pa_obj_realloc(pa_obj_calloc(2, 8), 100));
  pa_mem_free(pa_mem_realloc(pa_mem_malloc(8), 9));
  /* a block freed by another thread, then its pool reused */
  for (int round = 0; round < 100; round++) {
    pthread_t thread;
    void *shared = pa_malloc(64);
    pthread_create(&thread, NULL, free_in_thread, shared);
    pthread_join(thread, NULL);
    pa_collect();
    pa_free(pa_malloc(64));
  }
  /* reuse of freed blocks of every class passes the use-after-free check */
  for (int round = 0; round < 3; round++) {
    void *blocks[600];
    for (int i = 0; i < 600; i++) blocks[i] = pa_malloc((size_t)i % 520 + 1);
    for (int i = 0; i < 600; i++) pa_free(blocks[i]);
  }
  _exit(failures ? 20 : 0);
}

static const struct scenario {
  const char *name;
  void (*run)(void);
  const char *expected[4]; /* substrings of the report */
} scenarios[] = {
    {"overflow", overflow, {"buffer overflow", "24 bytes requested", "trailing guard at", ": 58 fd"}},
    {"underflow", underflow, {"buffer underflow", "24 bytes requested", " 58\n", "serial"}},
    {"overflow_large", overflow_large, {"buffer overflow", "2000 bytes requested", "fd fd fd 58"}},
    {"double_free", double_free, {"double free", "was freed already", "24 bytes requested", "MEM"}},
    {"invalid_free_stack", invalid_free_stack, {"invalid free", "not returned by poolalloc"}},
    {"invalid_free_interior", invalid_free_interior, {"invalid free", "MEM domain"}},
    {"invalid_free_unmapped", invalid_free_unmapped, {"invalid free: 0x10000"}},
    {"invalid_realloc", invalid_realloc, {"invalid free", "not returned by poolalloc"}},
    {"mismatch_obj_mem", mismatch_obj_mem,
     {"API mismatch", "allocated through the OBJ domain", "released through the MEM domain"}},
    {"mismatch_mem_raw", mismatch_mem_raw,
     {"API mismatch", "allocated through the MEM domain", "released through the RAW domain"}},
#if !defined(__SANITIZE_ADDRESS__)
    /* (under AddressSanitizer the write into the poisoned free block is
     * caught first, by the sanitizer: test_asan_poison) */
    {"use_after_free", use_after_free, {"use after free", "is 0x58, not 0xdd", "40 bytes requested"}},
#endif
    {"api_setup_overflow", api_setup_overflow, {"buffer overflow", "24 bytes requested"}},
};

static bool aborted(int status) { return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT; }

int main(int argc, char **argv) {
  if (argc == 2) {
    for (size_t i = 0; i < sizeof scenarios / sizeof *scenarios; i++)
      if (strcmp(argv[1], scenarios[i].name) == 0) scenarios[i].run();
    if (strcmp(argv[1], "setup_too_late") == 0) setup_too_late();
    if (strcmp(argv[1], "clean") == 0) clean_work();
    if (strcmp(argv[1], "traced_overflow") == 0) traced_overflow();
    return 30; /* the fault went unnoticed */
  }
  static char report[16384];
  char *debug_env[] = {"POOLALLOC_DEBUG=1", NULL};
  char *no_env[] = {NULL};
  for (size_t i = 0; i < sizeof scenarios / sizeof *scenarios; i++) {
    const struct scenario *s = &scenarios[i];
    bool by_api = strncmp(s->name, "api_", 4) == 0;
    int status = check_run_child(argv[0], s->name, by_api ? no_env : debug_env, report, sizeof report);
    CHECK(aborted(status));
    for (int e = 0; e < 4 && s->expected[e]; e++) {
      bool found = strstr(report, s->expected[e]) != NULL;
      CHECK(found);
      if (!found) fprintf(stderr, "%s: no \"%s\" in:\n%s\n", s->name, s->expected[e], report);
    }
    CHECK(strstr(report, "poolalloc: debug: aborting") != NULL);
  }

  /* With tracing on, the report says where the block was allocated. */
  char *traced_env[] = {"POOLALLOC_DEBUG=1", "POOLALLOC_TRACE=4", NULL};
  CHECK(aborted(check_run_child(argv[0], "traced_overflow", traced_env, report, sizeof report)));
  CHECK(strstr(report, "allocated at (most recent call first):") != NULL);
  CHECK(strstr(report, " traced_overflow+0x") != NULL);
  CHECK(strstr(report, " main+0x") != NULL);
  if (strstr(report, " traced_overflow+0x") == NULL) fprintf(stderr, "%s\n", report);

  int status = check_run_child(argv[0], "setup_too_late", no_env, report, sizeof report);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  /* Correct work: no report, a clean exit. */
  status = check_run_child(argv[0], "clean", debug_env, report, sizeof report);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK_EQ(strlen(report), 0);
  if (report[0]) fprintf(stderr, "clean run reported:\n%s\n", report);
  return check_done();
}
