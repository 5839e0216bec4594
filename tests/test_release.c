/* Freed memory goes back to the OS without pa_collect: RSS read from
 * /proc while the program goes on allocating from warm pools, and while it
 * makes no call at all; and a structure that dies whole and is built again
 * keeps its memory warm (page faults from getrusage).  Default build only:
 * RSS means little under the sanitizers and Valgrind.
 *
 *   test_release           every case, each in a child of its own
 *   test_release CASE      one case (warm, idle, decay, partial, threads, rebuild,
 *                          mappings)
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "inline.h"

enum { BLOCKS = 2000000, BLOCK_SIZE = 48, DEADLINE_MS = 3000 };

static void **blocks;

/* BLOCKS blocks of 48 bytes, each touched: about 100 MB. */
static size_t allocate_all(void) {
  size_t before = _pa_os_resident_bytes();
  blocks = pa_malloc(BLOCKS * sizeof *blocks);
  for (size_t i = 0; i < BLOCKS; i++) {
    blocks[i] = pa_malloc(BLOCK_SIZE);
    memset(blocks[i], (int)i, BLOCK_SIZE);
  }
  return _pa_os_resident_bytes() - before;
}

static void free_all(void) {
  for (size_t i = 0; i < BLOCKS; i++) pa_free(blocks[i]);
  pa_free(blocks);
}

/* The resident bytes the blocks added that are still resident. */
static size_t left_of(size_t base) {
  size_t now = _pa_os_resident_bytes();
  return now > base ? now - base : 0;
}

static void sleep_ms(long ms) {
  struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&pause, NULL);
}

/* Frees everything, then runs `meanwhile` until 80% of what the blocks
 * added is back or the deadline passes; at least 80% must be back. */
static void free_all_then(const char *name, void (*meanwhile)(void)) {
  size_t base = _pa_os_resident_bytes();
  size_t added = allocate_all();
  free_all();
  uint64_t start = _pa_os_monotonic_ms();
  size_t left = left_of(base);
  while (left * 5 > added && _pa_os_monotonic_ms() - start < DEADLINE_MS) {
    meanwhile();
    left = left_of(base);
  }
  fprintf(stderr, "%s: %zu KiB added, %zu KiB left after %llu ms\n", name, added >> 10,
          left >> 10, (unsigned long long)(_pa_os_monotonic_ms() - start));
  CHECK(added > (size_t)BLOCKS * BLOCK_SIZE / 2);
  CHECK(left * 5 <= added);
}

static void warm_loop(void) {
  for (int i = 0; i < 1000; i++) pa_free(pa_malloc(BLOCK_SIZE));
}
static void no_call(void) { sleep_ms(20); }

/* A program that goes on with a malloc/free loop of one size (warm pools,
 * no arena event) gets at least 80% of the freed memory back within the
 * decay delay of its calls. */
static void test_warm_traffic(void) { free_all_then("warm", warm_loop); }

/* One that makes no call at all gets it back at once: the wholly free
 * arenas kept warm are bounded. */
static void test_idle(void) { free_all_then("idle", no_call); }

/* A heap below the bound (kept warm for the decay delay), freed, while
 * another structure stays half used: allocations that refill from its
 * half-used pools (slow paths that reach no arena) give the freed arenas
 * back once the delay is over, all but the spare and the one shared with
 * live blocks. */
static void test_decay_on_slow_paths(void) {
  enum { KEPT = 40000, FREED = 110000, BATCH = 500 }; /* 7 MiB freed */
  static void *kept[KEPT], *freed[FREED];
  for (int i = 0; i < KEPT; i++) memset(kept[i] = pa_malloc(BLOCK_SIZE), 1, BLOCK_SIZE);
  memset(freed, 0, sizeof freed); /* all resident before the base is read */
  size_t base = _pa_os_resident_bytes();
  for (int i = 0; i < FREED; i++) memset(freed[i] = pa_malloc(64), 1, 64);
  size_t added = _pa_os_resident_bytes() - base;
  for (int i = 0; i < FREED; i++) pa_free(freed[i]);
  for (int i = 0; i < KEPT; i += 2) pa_free(kept[i]);
  size_t left_at_once = left_of(base);
  uint64_t start = _pa_os_monotonic_ms();
  size_t left = left_at_once;
  size_t allowed = 2 * PA_ARENA_SIZE + added / 10;
  for (int i = 0; i < KEPT && left > allowed; i += 2) {
    kept[i] = pa_malloc(BLOCK_SIZE);
    if (i % BATCH == 0) {
      sleep_ms(5);
      left = left_of(base);
    }
  }
  fprintf(stderr, "decay: %zu KiB added, %zu KiB left at once, %zu KiB after %llu ms\n",
          added >> 10, left_at_once >> 10, left >> 10,
          (unsigned long long)(_pa_os_monotonic_ms() - start));
  CHECK(left_at_once > allowed); /* below the bound: kept warm at first */
  CHECK(left <= allowed);
}

/* All but one block per arena (and the last) freed, so every arena keeps
 * live blocks and none can be unmapped: the empty pools inside them go
 * back to the OS without any call, at once past max(8 MiB, half the
 * arenas' pools), all of them after the decay delay and a slow
 * allocation.  What stays is the run of each live block (its carved pages
 * are resident: a run's free pages are not purged while it holds a live
 * block), the arenas' records, and what the heap keeps warm: 1 MiB at
 * most. */
static void test_partial(void) {
  static void *kept[BLOCKS / (PA_ARENA_SIZE / PA_POOL_SIZE) + 2];
  size_t run_bytes = _pa_class_run_pools((unsigned)pa_domain_class(PA_DOMAIN_MEM, BLOCK_SIZE)) * PA_POOL_SIZE;
  size_t base = _pa_os_resident_bytes();
  size_t added = allocate_all();
  size_t n = 0;
  uintptr_t last_arena = 0;
  for (size_t i = 0; i < BLOCKS; i++) {
    uintptr_t arena = pa_arena_of(blocks[i])->base;
    if ((arena != last_arena || i == BLOCKS - 1) && n < sizeof kept / sizeof *kept)
      kept[n++] = blocks[i];
    else
      pa_free(blocks[i]);
    last_arena = arena;
  }
  pa_free(blocks);
  struct pa_stats s;
  pa_stats_get(&s);
  size_t left_at_once = left_of(base);
  sleep_ms(50);
  pa_free(pa_malloc(200)); /* a slow path: a pool of a class not used yet */
  size_t left = left_of(base);
  size_t pinned = n * run_bytes + s.bytes_metadata + ((size_t)1 << 20);
  fprintf(stderr, "partial: %zu KiB added, %zu KiB left at once, %zu KiB after the delay "
          "(%zu live runs of %zu KiB)\n", added >> 10, left_at_once >> 10, left >> 10, n, run_bytes >> 10);
  CHECK_EQ(s.arenas_released, 0); /* no arena could go */
  CHECK(n >= s.arenas_current && n <= s.arenas_current + 1);
  CHECK(left_at_once <= added / 2 + pinned);
  CHECK(left <= pinned);
  for (size_t i = 0; i < n; i++) pa_free(kept[i]);
}

/* 10,000 short threads, one after another, each freeing the blocks the one
 * before it left and leaving its own: exited threads' heaps are adopted
 * whole, so the program does not grow by starting and ending threads. */
enum { LEFT = 8 };
static void *left_behind[LEFT];
static void *short_life(void *arg) {
  for (int i = 0; i < LEFT; i++) {
    pa_free(left_behind[i]);
    left_behind[i] = pa_malloc(i == 0 ? 3000 : 16 + (uintptr_t)arg % 497);
    memset(left_behind[i], 1, 16);
  }
  return NULL;
}

static void test_thread_lives(void) {
  enum { LIVES = 10000, FIRST = 1000 };
  size_t after_first = 0;
  for (uintptr_t i = 0; i < LIVES; i++) {
    pthread_t thread;
    pthread_create(&thread, NULL, short_life, (void *)i);
    pthread_join(thread, NULL);
    if (i == FIRST - 1) after_first = _pa_os_resident_bytes();
  }
  size_t end = _pa_os_resident_bytes();
  struct pa_stats s;
  pa_stats_get(&s);
  fprintf(stderr, "threads: %zu KiB resident after %d threads, %zu KiB after %d; %zu heaps\n",
          after_first >> 10, FIRST, end >> 10, LIVES, s.heaps);
  CHECK(end <= after_first + ((size_t)5 << 20));
  CHECK(s.heaps <= 2);
  for (int i = 0; i < LEFT; i++) pa_free(left_behind[i]);
}

/* A tree of 2^depth - 1 nodes of 48 bytes. */
struct node {
  struct node *left, *right;
  char payload[BLOCK_SIZE - 2 * sizeof(struct node *)];
};
static struct node *tree_make(int depth) {
  struct node *n = pa_malloc(sizeof *n);
  n->left = depth > 1 ? tree_make(depth - 1) : NULL;
  n->right = depth > 1 ? tree_make(depth - 1) : NULL;
  return n;
}
static void tree_free(struct node *n) {
  if (n == NULL) return;
  tree_free(n->left);
  tree_free(n->right);
  pa_free(n);
}

static long minor_faults(void) {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

/* A structure that dies whole and is built again at once, beside a
 * long-lived one: the builds after the first take its memory back warm,
 * so all of them together fault in fewer pages than two first builds.
 * The delay is set longer than a build takes in any build of the tests
 * (arenas left waiting while the build is under way decay by time). */
static void test_rebuild(void) {
  enum { DEPTH = 17, REBUILDS = 40 }; /* 131,071 nodes: 6 MiB */
  pa_arena_decay_ms(200);
  struct node *long_lived = tree_make(DEPTH);
  long before = minor_faults();
  tree_free(tree_make(DEPTH));
  long first = minor_faults() - before;
  before = minor_faults();
  for (int i = 0; i < REBUILDS; i++) tree_free(tree_make(DEPTH));
  long rebuilds = minor_faults() - before;
  fprintf(stderr, "rebuild: first build %ld faults, %d more builds %ld\n", first, REBUILDS,
          rebuilds);
  CHECK(first > 1000);
  CHECK(rebuilds < 2 * first);
  tree_free(long_lived);
}

static int mappings(void) {
  FILE *maps = fopen("/proc/self/maps", "r");
  int count = 0;
  for (int c; (c = fgetc(maps)) != EOF;) count += c == '\n';
  fclose(maps);
  return count;
}

/* Arenas and large blocks taken one after another share the kernel's
 * mappings: 256 MiB of arenas (1,024 in the default geometry), or 2,048
 * blocks of 100 KiB, add a handful, where each took one of its own and a
 * heap of 16 GiB of arenas, or of 65,000 such blocks, reached the
 * process's limit (vm.max_map_count).  Secure builds keep a guard page
 * after each arena, so each arena is a mapping or two there. */
static int mappings_added(size_t size, size_t count, void **kept) {
  int before = mappings();
  for (size_t i = 0; i < count; i++) {
    kept[i] = pa_malloc(size);
    ((char *)kept[i])[0] = 1;
  }
  int added = mappings() - before;
  for (size_t i = 0; i < count; i++) pa_free(kept[i]);
  return added;
}

static void test_mappings(void) {
  enum { SIZE = 4000, COUNT = (256 << 20) / 4096, LARGE = 100 << 10, LARGE_COUNT = 2048 };
  void **kept = pa_malloc(COUNT * sizeof *kept);
  size_t arenas = (size_t)COUNT * 4096 / PA_ARENA_SIZE;
  int added = mappings_added(SIZE, COUNT, kept);
  fprintf(stderr, "mappings: %zu arenas added %d\n", arenas, added);
  if (PA_SECURE)
    CHECK((size_t)added >= arenas);
  else
    CHECK(added < 16);
  added = mappings_added(LARGE, LARGE_COUNT, kept);
  fprintf(stderr, "mappings: %d blocks of %d bytes added %d\n", LARGE_COUNT, LARGE, added);
  CHECK(added < 16);
  /* and arenas given back are taken again where they were, so rounds of
   * taking and giving back do not walk down the address space */
  uintptr_t lowest[2] = {UINTPTR_MAX, UINTPTR_MAX};
  for (int round = 0; round < 50; round++) {
    uintptr_t low = UINTPTR_MAX;
    for (size_t i = 0; i < COUNT / 8; i++) {
      kept[i] = pa_malloc(SIZE);
      if ((uintptr_t)kept[i] < low) low = (uintptr_t)kept[i];
    }
    for (size_t i = 0; i < COUNT / 8; i++) pa_free(kept[i]);
    pa_collect();
    lowest[round > 0] = low;
  }
  fprintf(stderr, "mappings: lowest block moved %ld KiB in 50 rounds\n",
          (long)(lowest[0] - lowest[1]) / 1024);
  CHECK(lowest[1] + ((uintptr_t)64 << 20) >= lowest[0]);
  pa_free(kept);
}

static const struct {
  const char *name;
  void (*run)(void);
} cases[] = {{"warm", test_warm_traffic},
             {"idle", test_idle},
             {"decay", test_decay_on_slow_paths},
             {"partial", test_partial},
             {"threads", test_thread_lives},
             {"rebuild", test_rebuild},
             {"mappings", test_mappings}};

int main(int argc, char **argv) {
  /* no transparent huge pages: the kernel collapsing a region into one
   * (asynchronously) would add resident bytes the allocator never touched */
  prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    if (argc == 2) {
      if (strcmp(argv[1], cases[i].name) == 0) {
        cases[i].run();
        return check_done();
      }
      continue;
    }
    char output[4096];
    int status = check_run_child(argv[0], cases[i].name, environ, output, sizeof output);
    fputs(output, stderr);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  return argc == 2 ? 2 : check_done();
}
