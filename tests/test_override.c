/* The malloc override: every C entry point, run once with poolalloc
 * preloaded and once linked with libpoolalloc-override.a.  The program
 * calls only the C library's names; pa_stats_get (weak) shows that
 * poolalloc is the one answering. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "poolalloc.h"

extern int pa_stats_get(struct pa_stats *) __attribute__((weak));

static void *early; /* allocated before main, by a constructor */
__attribute__((constructor)) static void allocate_early(void) { early = malloc(24); }

static size_t small_allocations(void) {
  struct pa_stats s;
  pa_stats_get(&s);
  return s.small_allocations;
}

static void test_served_by_poolalloc(void) {
  CHECK(pa_stats_get != NULL);
  if (pa_stats_get == NULL) return;
  size_t before = small_allocations();
  void *p = malloc(16);
  char *s = strdup("the C library's own callers reach poolalloc too");
  CHECK_EQ(small_allocations(), before + 2);
  CHECK_EQ(malloc_usable_size(p), 16);
  free(p);
  free(s);
  CHECK(early != NULL && malloc_usable_size(early) == check_block16(24));
  free(early);
}

static void test_aligned_entry_points(void) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  bool aligned = true, usable = true;
  for (size_t align = 8; align <= ((size_t)1 << 20); align <<= 1) {
    for (size_t size = 1; size <= 5000; size = size * 5 + 3) {
      void *a = NULL;
      CHECK_EQ(posix_memalign(&a, align, size), 0);
      void *b = aligned_alloc(align, size);
      void *c = memalign(align, size);
      aligned &= (uintptr_t)a % align == 0 && (uintptr_t)b % align == 0 && (uintptr_t)c % align == 0;
      usable &= malloc_usable_size(a) >= size && malloc_usable_size(b) >= size &&
                malloc_usable_size(c) >= size;
      memset(a, 1, size);
      memset(b, 2, size);
      memset(c, 3, size);
      free(a);
      free(b);
      free(c);
    }
  }
  CHECK(aligned);
  CHECK(usable);
  void *v = valloc(100);
  CHECK_EQ((uintptr_t)v % page, 0);
  free(v);
  void *pv = pvalloc(page + 1);
  CHECK_EQ((uintptr_t)pv % page, 0);
  CHECK(malloc_usable_size(pv) >= 2 * page);
  free(pv);
  volatile size_t not_a_power = 48;
  void *m = memalign(not_a_power, 10); /* rounded up to 64, as glibc does */
  CHECK_EQ((uintptr_t)m % 64, 0);
  free(m);
}

static void test_errors(void) {
  /* through a volatile, so the compiler cannot see the sizes are absurd */
  volatile size_t half = SIZE_MAX / 2, quarter = SIZE_MAX / 4, max = SIZE_MAX, three = 3;
  void *p = (void *)1;
  CHECK_EQ(posix_memalign(&p, 3, 16), EINVAL);
  CHECK_EQ(posix_memalign(&p, 24, 16), EINVAL);
  CHECK(p == (void *)1);
  errno = 0;
  CHECK(aligned_alloc(three, 16) == NULL);
  CHECK_EQ(errno, EINVAL);
  errno = 0;
  CHECK(reallocarray(NULL, half, 3) == NULL);
  CHECK_EQ(errno, ENOMEM);
  errno = 0;
  CHECK(calloc(quarter, 8) == NULL);
  CHECK_EQ(errno, ENOMEM);
  errno = 0;
  CHECK(malloc(max - 64) == NULL);
  CHECK_EQ(errno, ENOMEM);
  errno = 0;
  CHECK(pvalloc(max - 10) == NULL);
  CHECK_EQ(errno, ENOMEM);
  int *a = reallocarray(NULL, 10, sizeof(int));
  for (int i = 0; i < 10; i++) a[i] = i;
  a = reallocarray(a, 1000, sizeof(int));
  CHECK(a[9] == 9);
  free(a);
  CHECK_EQ(malloc_usable_size(NULL), 0);
  void *r = realloc(NULL, 10);
  CHECK(r != NULL);
  CHECK(realloc(r, 0) == NULL);
  free(NULL);
}

/* Memory poolalloc did not hand out is left alone, never passed to another
 * allocator: free does nothing to it, its usable size is 0, and realloc
 * refuses it with ENOMEM. */
static void test_foreign_pointers(void) {
  char *foreign = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(foreign != MAP_FAILED);
  strcpy(foreign + 16, "not poolalloc's");
  free(foreign + 16);
  CHECK_EQ(malloc_usable_size(foreign + 16), 0);
  errno = 0;
  CHECK(realloc(foreign + 16, 3000) == NULL);
  CHECK_EQ(errno, ENOMEM);
  CHECK(strcmp(foreign + 16, "not poolalloc's") == 0);
  munmap(foreign, 4096);
}

static void *thread_body(void *arg) {
  void **slot = arg;
  for (int i = 0; i < 10000; i++) free(malloc((size_t)(i % 700) + 1));
  *slot = malloc(40); /* freed by main after this thread is gone */
  return NULL;
}

static void test_threads_and_fork(void) {
  pthread_t threads[8];
  void *left[8];
  for (int i = 0; i < 8; i++) pthread_create(&threads[i], NULL, thread_body, &left[i]);
  pid_t pid = fork(); /* while the threads run */
  if (pid == 0) {
    void *blocks[500];
    for (int i = 0; i < 500; i++) blocks[i] = malloc((size_t)i + 1);
    for (int i = 0; i < 500; i++) free(blocks[i]);
    _exit(blocks[499] ? 0 : 1);
  }
  int status = -1;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  for (int i = 0; i < 8; i++) pthread_join(threads[i], NULL);
  for (int i = 0; i < 8; i++) {
    if (pa_stats_get) CHECK_EQ(malloc_usable_size(left[i]), check_block16(40));
    free(left[i]);
  }
  if (pa_stats_get == NULL) return;
  struct pa_stats s;
  pa_stats_get(&s);
  CHECK_EQ(s.heaps_abandoned + 1, s.heaps); /* every exited thread gave its heap up */
}

/* Every C entry point, 1 byte to 1 MiB: 16-byte aligned from 16 bytes up,
 * as glibc's results are (a struct with a long double may be stored with
 * movaps). */
static void *calloc_count(size_t n) { return calloc(n, 1); }
static void *calloc_size(size_t n) { return calloc(1, n); }
static void *realloc_fresh(size_t n) { return realloc(NULL, n); }
static void *realloc_grown(size_t n) { return realloc(malloc(n > 1 ? n / 2 : 1), n); }
static void *realloc_shrunk(size_t n) { return realloc(malloc(n * 2), n); }
static void *reallocarray_grown(size_t n) { return reallocarray(malloc(8), n, 1); }
static void *aligned16(size_t n) { return aligned_alloc(16, n); }
static void *memalign16(size_t n) { return memalign(16, n); }

static void test_alignment_contract(void) {
  static const struct check_entry entries[] = {
      {"malloc", malloc, free},
      {"calloc(n, 1)", calloc_count, free},
      {"calloc(1, n)", calloc_size, free},
      {"realloc(NULL, n)", realloc_fresh, free},
      {"realloc grown", realloc_grown, free},
      {"realloc shrunk", realloc_shrunk, free},
      {"reallocarray", reallocarray_grown, free},
      {"aligned_alloc(16, n)", aligned16, free},
      {"memalign(16, n)", memalign16, free},
  };
  CHECK_ALIGNMENT_SWEEPS(entries);
}

/* glibc's extensions answer for poolalloc's heap: mallinfo2 sees blocks
 * come and go, malloc_trim gives the freed arenas back, mallopt accepts,
 * malloc_info writes XML (and refuses options), malloc_stats prints
 * poolalloc's statistics. */
static void test_glibc_extensions(void) {
  if (pa_stats_get == NULL) return;
  enum { N = 100000, SIZE = 64 };
  static void *blocks[N];
  struct mallinfo2 before = mallinfo2();
  for (int i = 0; i < N; i++) blocks[i] = malloc(SIZE);
  struct mallinfo2 during = mallinfo2();
  CHECK(during.uordblks - before.uordblks >= (size_t)N * SIZE);
  CHECK(during.arena >= during.uordblks - during.hblkhd); /* pool blocks lie in arenas */
  CHECK(during.arena >= (size_t)N * SIZE);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations" /* programs still call it */
  struct mallinfo old = mallinfo();
#pragma GCC diagnostic pop
  CHECK_EQ((size_t)old.uordblks, during.uordblks);
  for (int i = 0; i < N; i++) free(blocks[i]);
  struct mallinfo2 after = mallinfo2();
  CHECK(after.uordblks <= before.uordblks);
  CHECK_EQ(malloc_trim(0), 1);
  struct mallinfo2 trimmed = mallinfo2();
  CHECK(trimmed.arena < after.arena || after.arena == 0);
  CHECK_EQ(malloc_trim(0), 0); /* nothing left to give */
  CHECK_EQ(mallopt(M_MMAP_THRESHOLD, 1 << 20), 1);
  char *xml = NULL;
  size_t length = 0;
  FILE *out = open_memstream(&xml, &length);
  CHECK_EQ(malloc_info(0, out), 0);
  fclose(out);
  CHECK(xml != NULL && strstr(xml, "<malloc version=\"poolalloc-1\">") == xml);
  CHECK(strstr(xml, "</malloc>") != NULL);
  free(xml);
  errno = 0;
  CHECK_EQ(malloc_info(1, stderr), -1);
  CHECK_EQ(errno, EINVAL);
  int saved = dup(2);
  FILE *capture = tmpfile();
  dup2(fileno(capture), 2);
  malloc_stats();
  dup2(saved, 2);
  close(saved);
  char text[256] = {0};
  rewind(capture);
  CHECK(fread(text, 1, sizeof text - 1, capture) > 0 && strstr(text, "Small block threshold") != NULL);
  fclose(capture);
}

int main(void) {
  test_served_by_poolalloc();
  test_glibc_extensions();
  test_alignment_contract();
  test_aligned_entry_points();
  test_errors();
  test_foreign_pointers();
  test_threads_and_fork();
  return check_done();
}
