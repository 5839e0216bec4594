/* Tracing: exact traced memory, snapshots grouped by traceback with symbol
 * names, comparison of snapshots, depth, threads, and POOLALLOC_TRACE's
 * report at exit.  Linked with -rdynamic so dladdr names the functions. */
#include <errno.h>
#include <poolalloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

enum { SMALL_COUNT = 100, SMALL_SIZE = 40, LARGE_COUNT = 10, LARGE_SIZE = 1000 };
static void *small_blocks[SMALL_COUNT], *large_blocks[LARGE_COUNT];

/* A site is a return address: a loop the compiler unrolls makes as many
 * sites as copies of the call, so the loops here are kept rolled.  The
 * barrier after a call keeps it from becoming a jump, which would leave no
 * frame. */
__attribute__((noinline)) void *site_small_one(void) {
  void *p = pa_malloc(SMALL_SIZE);
  __asm__ volatile("" ::: "memory");
  return p;
}

__attribute__((noinline)) void *site_large_one(void) {
  void *p = pa_obj_malloc(LARGE_SIZE);
  __asm__ volatile("" ::: "memory");
  return p;
}

__attribute__((noinline)) void site_small(void **out, int n) {
#pragma GCC unroll 1
  for (int i = 0; i < n; i++) out[i] = site_small_one();
}

__attribute__((noinline)) void site_large(void) {
#pragma GCC unroll 1
  for (int i = 0; i < LARGE_COUNT; i++) large_blocks[i] = site_large_one();
}

/* Two callers of one site: one allocation site, two tracebacks. */
__attribute__((noinline)) void *caller_one(void) {
  void *p = site_small_one();
  __asm__ volatile("" ::: "memory");
  return p;
}
__attribute__((noinline)) void *caller_two(void) {
  void *p = site_small_one();
  __asm__ volatile("" ::: "memory");
  return p;
}

static bool frame_names(const struct pa_trace_site *site, int i, const char *name) {
  char line[256];
  if (site == NULL || i >= site->frames) return false;
  pa_trace_format_frame(site->frame[i], line, sizeof line);
  char wanted[64];
  snprintf(wanted, sizeof wanted, " %s+0x", name);
  return strstr(line, wanted) != NULL;
}

static size_t traced_now(void) {
  size_t current, peak;
  pa_trace_get_traced_memory(&current, &peak);
  CHECK(peak >= current);
  return current;
}

static void test_not_tracing(void) {
  CHECK_EQ(pa_trace_frames(), 0);
  errno = 0;
  CHECK(pa_trace_snapshot() == NULL && errno == EINVAL);
  CHECK_EQ(pa_trace_start(0), -1);
  CHECK_EQ(pa_trace_start(PA_TRACE_MAX_FRAMES + 1), -1);
  CHECK_EQ(errno, EINVAL);
  CHECK_EQ(traced_now(), 0);
}

__attribute__((noinline)) static char *print_to_string(void (*print)(FILE *, const void *, const void *), const void *a,
                             const void *b) {
  char *text = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&text, &size);
  print(out, a, b);
  fclose(out);
  return text;
}

static void print_snapshot(FILE *out, const void *a, const void *b) {
  (void)b;
  pa_snapshot_print(a, out, 3);
}
static void print_compare(FILE *out, const void *a, const void *b) {
  pa_snapshot_compare(a, b, out, 5);
}

__attribute__((noinline)) void test_sites_and_compare(void) {
  CHECK_EQ(pa_trace_start(8), 0);
  CHECK_EQ(pa_trace_frames(), 8);
  site_small(small_blocks, SMALL_COUNT);
  site_large();
  CHECK_EQ(traced_now(), SMALL_COUNT * SMALL_SIZE + LARGE_COUNT * LARGE_SIZE);

  pa_snapshot *first = pa_trace_snapshot();
  CHECK(first != NULL);
  size_t count, bytes;
  pa_snapshot_totals(first, &count, &bytes);
  CHECK_EQ(count, SMALL_COUNT + LARGE_COUNT);
  CHECK_EQ(bytes, SMALL_COUNT * SMALL_SIZE + LARGE_COUNT * LARGE_SIZE);
  CHECK_EQ(pa_snapshot_sites(first), 2);
  const struct pa_trace_site *top = pa_snapshot_site(first, 0), *next = pa_snapshot_site(first, 1);
  CHECK(pa_snapshot_site(first, 2) == NULL);
  CHECK(top && top->bytes == LARGE_COUNT * LARGE_SIZE && top->count == LARGE_COUNT);
  CHECK(next && next->bytes == SMALL_COUNT * SMALL_SIZE && next->count == SMALL_COUNT);
  /* innermost frame first: the site, then its caller */
  CHECK(frame_names(top, 0, "site_large_one"));
  CHECK(frame_names(top, 1, "site_large"));
  CHECK(frame_names(top, 2, "test_sites_and_compare"));
  CHECK(frame_names(next, 0, "site_small_one"));

  char *text = print_to_string(print_snapshot, first, NULL);
  CHECK(strstr(text, "110 live traced blocks, 14000 bytes, from 2 allocation sites") != NULL);
  char *by_bytes = strstr(text, "Top 3 sites by bytes:"), *by_count = strstr(text, "Top 3 sites by count:");
  CHECK(by_bytes && by_count && by_bytes < by_count);
  /* by count the small site leads, by bytes the large one */
  CHECK(by_count && strstr(by_count, "#1: 100 blocks, 4000 bytes") != NULL);
  CHECK(by_bytes && strstr(by_bytes, "#1: 10000 bytes in 10 blocks") != NULL);
  CHECK(strstr(text, " site_large_one+0x") != NULL);
  free(text);

  /* free half the small blocks, grow one: the comparison shows both */
  for (int i = 0; i < SMALL_COUNT / 2; i++) pa_free(small_blocks[i]);
  small_blocks[SMALL_COUNT - 1] = pa_realloc(small_blocks[SMALL_COUNT - 1], 100);
  CHECK_EQ(traced_now(), (SMALL_COUNT / 2 - 1) * SMALL_SIZE + 100 + LARGE_COUNT * LARGE_SIZE);
  pa_snapshot *second = pa_trace_snapshot();
  text = print_to_string(print_compare, second, first);
  CHECK(strstr(text, "-1940 bytes, -50 blocks since the older snapshot") != NULL);
  /* the grown block moved: it is now counted where realloc was called */
  CHECK(strstr(text, "-2040 bytes (-51 blocks), now 1960 bytes in 49 blocks") != NULL);
  CHECK(strstr(text, "+100 bytes (+1 blocks), now 100 bytes in 1 blocks") != NULL);
  if (strstr(text, "-1940 bytes") == NULL) fprintf(stderr, "%s", text);
  free(text);

  for (int i = SMALL_COUNT / 2; i < SMALL_COUNT; i++) pa_free(small_blocks[i]);
  for (int i = 0; i < LARGE_COUNT; i++) pa_obj_free(large_blocks[i]);
  CHECK_EQ(traced_now(), 0);
  size_t peak;
  pa_trace_get_traced_memory(NULL, &peak);
  CHECK_EQ(peak, SMALL_COUNT * SMALL_SIZE + LARGE_COUNT * LARGE_SIZE);
  pa_snapshot_free(first);
  pa_snapshot_free(second);
}

/* Depth decides the grouping: one frame groups by site. */
static void test_depth(void) {
  void *one[3], *two[5];
  CHECK_EQ(pa_trace_start(1), 0);
  for (int i = 0; i < 3; i++) one[i] = caller_one();
  for (int i = 0; i < 5; i++) two[i] = caller_two();
  pa_snapshot *shallow = pa_trace_snapshot();
  CHECK_EQ(pa_snapshot_sites(shallow), 1);
  CHECK_EQ(pa_snapshot_site(shallow, 0)->count, 8);
  CHECK_EQ(pa_snapshot_site(shallow, 0)->frames, 1);
  pa_snapshot_free(shallow);
  for (int i = 0; i < 3; i++) pa_free(one[i]);
  for (int i = 0; i < 5; i++) pa_free(two[i]);

  CHECK_EQ(pa_trace_start(2), 0);
  for (int i = 0; i < 3; i++) one[i] = caller_one();
  for (int i = 0; i < 5; i++) two[i] = caller_two();
  pa_snapshot *deep = pa_trace_snapshot();
  CHECK_EQ(pa_snapshot_sites(deep), 2);
  const struct pa_trace_site *a = pa_snapshot_site(deep, 0), *b = pa_snapshot_site(deep, 1);
  CHECK(a->count == 5 && frame_names(a, 0, "site_small_one") && frame_names(a, 1, "caller_two"));
  CHECK(b->count == 3 && frame_names(b, 0, "site_small_one") && frame_names(b, 1, "caller_one"));
  pa_snapshot_free(deep);
  for (int i = 0; i < 3; i++) pa_free(one[i]);
  for (int i = 0; i < 5; i++) pa_free(two[i]);
}

/* Every path in: calloc, aligned, raw; frees from other threads. */
static void *thread_allocates(void *arg) {
  void **slots = arg;
  for (int i = 0; i < 1000; i++) slots[i] = pa_calloc(1, (size_t)(i % 700) + 1);
  return NULL;
}
static void *thread_frees(void *arg) {
  void **slots = arg;
  for (int i = 0; i < 1000; i++) pa_free(slots[i]);
  return NULL;
}

static void test_paths_and_threads(void) {
  CHECK_EQ(pa_trace_start(4), 0);
  void *aligned = pa_aligned_alloc(256, 300);
  void *raw = pa_raw_malloc(77);
  CHECK_EQ(traced_now(), 377);
  pa_free(aligned);
  pa_raw_free(raw);
  static void *slots[4][1000];
  pthread_t threads[4];
  for (int t = 0; t < 4; t++) pthread_create(&threads[t], NULL, thread_allocates, slots[t]);
  for (int t = 0; t < 4; t++) pthread_join(threads[t], NULL);
  size_t expected = 0;
  for (int i = 0; i < 1000; i++) expected += (size_t)(i % 700) + 1;
  CHECK_EQ(traced_now(), 4 * expected);
  for (int t = 0; t < 4; t++) pthread_create(&threads[t], NULL, thread_frees, slots[(t + 1) % 4]);
  for (int t = 0; t < 4; t++) pthread_join(threads[t], NULL);
  CHECK_EQ(traced_now(), 0);

  /* stopped: nothing traced, blocks from before free normally */
  void *survivor = pa_malloc(10);
  pa_trace_stop();
  CHECK_EQ(pa_trace_frames(), 0);
  CHECK_EQ(traced_now(), 0);
  pa_free(survivor);
  pa_free(pa_malloc(10));
}

/* POOLALLOC_TRACE=N: what is left at exit is reported by site. */
__attribute__((noinline)) void leaky_function(void) {
  void *leak = pa_malloc(33);
  __asm__ volatile("" : : "r"(leak) : "memory");
}

static void test_report_at_exit(const char *self) {
  int fds[2];
  if (pipe(fds) != 0) return;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    char *env[] = {"POOLALLOC_TRACE=3", NULL};
    execle(self, self, "leak", (char *)NULL, env);
    _exit(127);
  }
  close(fds[1]);
  static char report[8192];
  size_t used = 0;
  ssize_t n;
  while (used < sizeof report - 1 && (n = read(fds[0], report + used, sizeof report - 1 - used)) > 0)
    used += (size_t)n;
  report[used] = 0;
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(strstr(report, "blocks still allocated at exit") != NULL);
  CHECK(strstr(report, "7 live traced blocks, 231 bytes, from 1 allocation sites") != NULL);
  CHECK(strstr(report, " leaky_function+0x") != NULL);
  if (strstr(report, " leaky_function+0x") == NULL) fprintf(stderr, "%s\n", report);
}

/* POOLALLOC_TRACE=3, and the program starts tracing at 5 frames before its
 * first allocation: the program's call wins, as it does after it. */
static void test_program_start_wins(const char *self) {
  pid_t pid = fork();
  if (pid == 0) {
    char *env[] = {"POOLALLOC_TRACE=3", NULL};
    execle(self, self, "start_first", (char *)NULL, env);
    _exit(127);
  }
  int status;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK_EQ(WEXITSTATUS(status), 0);
}

static int start_first(void) {
  if (pa_trace_start(5) != 0) return 1;
  void *p = pa_malloc(40);
  size_t current = 0, peak = 0;
  pa_trace_get_traced_memory(&current, &peak);
  pa_free(p);
  if (pa_trace_frames() != 5) return 2;
  return current == 40 ? 0 : 3;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "leak") == 0) {
    if (pa_trace_frames() != 3) return 3;
#pragma GCC unroll 1
    for (int i = 0; i < 7; i++) leaky_function();
    return 0;
  }
  if (argc == 2 && strcmp(argv[1], "start_first") == 0) return start_first();
  test_not_tracing();
  test_sites_and_compare();
  test_depth();
  test_paths_and_threads();
  test_report_at_exit(argv[0]);
  test_program_start_wins(argv[0]);
  return check_done();
}
