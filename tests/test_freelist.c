/* Free lists: hits, misses, overflows and kept objects counted exactly; the
 * bound; a family of sizes; clearing, thread exit and destroy giving every
 * object back to the pools; bad configs and bad indices; the statistics and
 * JSON.  Run with POOLALLOC_DEBUG=1 too: lists then keep nothing.
 *
 *   test_freelist              the checks
 *   test_freelist bad_index    frees with an index out of range (a child)
 */
#include <errno.h>
#include <poolalloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static bool debug_mode;

/* After taking back what other threads freed into this thread's pools (and
 * emptying its free lists): pa_collect. */
static size_t settled_blocks_in_use(void) {
  pa_collect();
  return check_pool_blocks_in_use();
}

static struct pa_freelist_stats stats_of(pa_freelist *list, int index) {
  struct pa_freelist_stats st;
  memset(&st, 0xff, sizeof st);
  CHECK_EQ(pa_freelist_stats(list, index, &st), 0);
  return st;
}

static void test_bad_configs(void) {
  struct pa_freelist_config good = {"good", 16, 0, 1, 4, PA_DOMAIN_OBJ};
  struct pa_freelist_config bad[] = {
      {"small", sizeof(void *) - 1, 0, 1, 4, PA_DOMAIN_OBJ},
      {"no sizes", 16, 0, 0, 4, PA_DOMAIN_OBJ},
      {"raw", 16, 0, 1, 4, PA_DOMAIN_RAW},
      {"domain 7", 16, 0, 1, 4, (pa_domain)7},
      {"overflow", 16, (size_t)-1 / 2, 3, 4, PA_DOMAIN_OBJ},
      {"too many", 16, 8, PA_FREELIST_MAX_SIZES + 1, 4, PA_DOMAIN_OBJ},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    errno = 0;
    CHECK(pa_freelist_create(&bad[i]) == NULL);
    CHECK_EQ(errno, EINVAL);
  }
  errno = 0;
  CHECK(pa_freelist_create(NULL) == NULL);
  CHECK_EQ(errno, EINVAL);
  pa_freelist *list = pa_freelist_create(&good);
  CHECK(list != NULL);
  pa_freelist_destroy(list);
  errno = 0;
  struct pa_freelist_stats st;
  CHECK_EQ(pa_freelist_stats(list, -1, &st), -1);
  CHECK_EQ(errno, EINVAL);
  errno = 0;
  CHECK(pa_freelist_alloc(list, 0) == NULL);
  CHECK_EQ(errno, EINVAL);
  int forged[16];
  CHECK_EQ(pa_freelist_stats((pa_freelist *)forged, -1, &st), -1);
}

/* One size: the first allocation misses, a freed object comes back (a hit,
 * the same address), the bound holds and the rest overflow. */
static void test_one_size(void) {
  enum { KEEP = 8, EXTRA = 5 };
  struct pa_freelist_config config = {"floats", 24, 0, 1, KEEP, PA_DOMAIN_OBJ};
  pa_freelist *list = pa_freelist_create(&config);
  CHECK(list != NULL);
  size_t base = check_pool_blocks_in_use();
  void *a = pa_freelist_alloc(list, 0);
  CHECK(a != NULL);
  CHECK(pa_usable_size(a) >= 24);
  struct pa_freelist_stats st = stats_of(list, -1);
  CHECK(strcmp(st.name, "floats") == 0);
  CHECK_EQ(st.size, 24);
  CHECK_EQ(st.domain, PA_DOMAIN_OBJ);
  CHECK_EQ(st.misses, 1);
  CHECK_EQ(st.hits, 0);
  pa_freelist_free(list, 0, a);
  pa_freelist_free(list, 0, NULL);
  st = stats_of(list, 0);
  CHECK_EQ(st.kept, debug_mode ? 0 : 1);
  CHECK_EQ(st.bytes_kept, debug_mode ? 0 : 24);
  CHECK_EQ(st.overflows, debug_mode ? 1 : 0);
  void *b = pa_freelist_alloc(list, 0);
  if (!debug_mode) CHECK(b == a);
  st = stats_of(list, 0);
  CHECK_EQ(st.hits, debug_mode ? 0 : 1);
  CHECK_EQ(st.misses, debug_mode ? 2 : 1);
  pa_freelist_free(list, 0, b);

  void *objects[KEEP + EXTRA];
  for (int i = 0; i < KEEP + EXTRA; i++) objects[i] = pa_freelist_alloc(list, 0);
  for (int i = 0; i < KEEP + EXTRA; i++) pa_freelist_free(list, 0, objects[i]);
  st = stats_of(list, -1);
  CHECK_EQ(st.kept, debug_mode ? 0 : KEEP);
  CHECK_EQ(st.overflows, debug_mode ? 2 + KEEP + EXTRA : EXTRA);
  /* kept objects are blocks in use, as far as the pools know */
  CHECK_EQ(check_pool_blocks_in_use(), base + st.kept);
  CHECK_EQ(pa_freelist_clear(list), debug_mode ? 0 : KEEP);
  CHECK_EQ(stats_of(list, -1).kept, 0);
  CHECK_EQ(check_pool_blocks_in_use(), base);
  pa_freelist_destroy(list);
}

/* A family, as tuples by length: index i holds 24 + 8 i bytes. */
static void test_family(void) {
  enum { SIZES = 20, KEEP = 100 };
  struct pa_freelist_config config = {"tuple", 24, 8, SIZES, KEEP, PA_DOMAIN_OBJ};
  pa_freelist *list = pa_freelist_create(&config);
  CHECK(list != NULL);
  void *objects[SIZES][3];
  for (unsigned i = 0; i < SIZES; i++)
    for (int k = 0; k < 3; k++) {
      objects[i][k] = pa_freelist_alloc(list, i);
      CHECK(pa_usable_size(objects[i][k]) >= 24 + 8 * i);
      memset(objects[i][k], (int)i, 24 + 8 * i);
    }
  for (unsigned i = 0; i < SIZES; i++)
    for (int k = 0; k < 3; k++) pa_freelist_free(list, i, objects[i][k]);
  struct pa_freelist_stats all = stats_of(list, -1);
  CHECK_EQ(all.misses, SIZES * 3);
  CHECK_EQ(all.kept, debug_mode ? 0 : SIZES * 3);
  size_t bytes = 0;
  for (unsigned i = 0; i < SIZES; i++) bytes += 3 * (24 + 8 * i);
  CHECK_EQ(all.bytes_kept, debug_mode ? 0 : bytes);
  struct pa_freelist_stats five = stats_of(list, 5);
  CHECK_EQ(five.kept, debug_mode ? 0 : 3);
  CHECK_EQ(five.bytes_kept, debug_mode ? 0 : 3 * 64);
  /* a hit of index 5 is one of index 5's objects, never another size's */
  void *again = pa_freelist_alloc(list, 5);
  if (!debug_mode) CHECK(again == objects[5][0] || again == objects[5][1] || again == objects[5][2]);
  pa_freelist_free(list, 5, again);
  errno = 0;
  CHECK(pa_freelist_alloc(list, SIZES) == NULL);
  CHECK_EQ(errno, EINVAL);
  struct pa_freelist_stats st;
  CHECK_EQ(pa_freelist_stats(list, SIZES, &st), -1);
  CHECK_EQ(pa_freelist_stats(list, -2, &st), -1);

  /* pa_stats totals and the printed and JSON reports name the list */
  struct pa_stats s;
  pa_stats_get(&s);
  CHECK_EQ(s.freelists.lists, 1);
  CHECK_EQ(s.freelists.kept, all.kept);
  CHECK_EQ(s.freelists.misses, stats_of(list, -1).misses);
  char *text = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&text, &size);
  pa_stats_print(out);
  CHECK_EQ(pa_stats_json(out), 0);
  fclose(out);
  CHECK(strstr(text, "\ntuple              obj        24      8    20      100") != NULL);
  CHECK(strstr(text, "\"freelists\":{\"lists\":1,") != NULL);
  CHECK(strstr(text, "{\"name\":\"tuple\",\"domain\":\"obj\",\"size\":24,\"step\":8,\"sizes\":20,"
                     "\"max_kept\":100,") != NULL);
  free(text);
  pa_collect(); /* empties this thread's lists */
  CHECK_EQ(stats_of(list, -1).kept, 0);
  pa_freelist_destroy(list);
}

struct worker {
  pa_freelist *list;
  void *received; /* allocated by main, freed by the worker */
  pthread_barrier_t *kept, *destroyed;
  void *first;
};

static void *keep_and_exit(void *arg) {
  struct worker *w = arg;
  void *objects[50];
  for (int i = 0; i < 50; i++) objects[i] = pa_freelist_alloc(w->list, 0);
  w->first = objects[0];
  for (int i = 0; i < 50; i++) pa_freelist_free(w->list, 0, objects[i]);
  if (w->received) pa_freelist_free(w->list, 0, w->received);
  if (w->kept) {
    pthread_barrier_wait(w->kept);      /* main destroys the list now */
    pthread_barrier_wait(w->destroyed); /* exit with emptied bins */
  }
  return NULL;
}

/* What a thread keeps goes back to the pools when it exits; an object freed
 * by another thread joins that thread's list. */
static void test_thread_exit(void) {
  struct pa_freelist_config config = {"nodes", 40, 0, 1, 1000, PA_DOMAIN_MEM};
  pa_freelist *list = pa_freelist_create(&config);
  size_t base = settled_blocks_in_use();
  struct worker w = {list, pa_freelist_alloc(list, 0), NULL, NULL, NULL};
  pthread_t thread;
  pthread_create(&thread, NULL, keep_and_exit, &w);
  pthread_join(thread, NULL);
  struct pa_freelist_stats st = stats_of(list, -1);
  CHECK_EQ(st.kept, 0);
  CHECK_EQ(st.misses, 51);
  CHECK_EQ(settled_blocks_in_use(), base);

  /* a thread's kept object serves that thread's next allocation */
  w.received = NULL;
  pthread_create(&thread, NULL, keep_and_exit, &w);
  pthread_join(thread, NULL);
  void *mine = pa_freelist_alloc(list, 0);
  pa_freelist_free(list, 0, mine);
  void *again = pa_freelist_alloc(list, 0);
  if (!debug_mode) CHECK(again == mine);
  pa_freelist_free(list, 0, again);
  pa_freelist_destroy(list);
  CHECK_EQ(settled_blocks_in_use(), base);
}

/* Destroy takes back what every thread keeps, a live one's too. */
static void test_destroy(void) {
  struct pa_freelist_config config = {"dicts", 48, 0, 1, 1000, PA_DOMAIN_OBJ};
  pa_freelist *list = pa_freelist_create(&config);
  size_t base = settled_blocks_in_use();
  struct pa_stats s;
  pa_stats_get(&s);
  size_t lists = s.freelists.lists;
  pthread_barrier_t kept, destroyed;
  pthread_barrier_init(&kept, NULL, 2);
  pthread_barrier_init(&destroyed, NULL, 2);
  struct worker w = {list, NULL, &kept, &destroyed, NULL};
  pthread_t thread;
  pthread_create(&thread, NULL, keep_and_exit, &w);
  for (int i = 0; i < 20; i++) pa_freelist_free(list, 0, pa_freelist_alloc(list, 0));
  pthread_barrier_wait(&kept);
  CHECK_EQ(stats_of(list, -1).kept, debug_mode ? 0 : 51);
  pa_freelist_destroy(list);
  pthread_barrier_wait(&destroyed);
  pthread_join(thread, NULL);
  CHECK_EQ(settled_blocks_in_use(), base);
  pa_stats_get(&s);
  CHECK_EQ(s.freelists.lists, lists - 1);
  CHECK_EQ(s.freelists.kept, 0);
  pthread_barrier_destroy(&kept);
  pthread_barrier_destroy(&destroyed);
}

/* Indices are a bounded resource: a list too large fails with ENOMEM, and
 * destroyed lists give theirs back. */
static void test_capacity(void) {
  struct pa_freelist_config half = {"half", 16, 8, PA_FREELIST_MAX_SIZES / 2, 4, PA_DOMAIN_OBJ};
  pa_freelist *a = pa_freelist_create(&half);
  pa_freelist *b = pa_freelist_create(&half);
  CHECK(a != NULL && b != NULL);
  struct pa_freelist_config one = {"one", 16, 0, 1, 4, PA_DOMAIN_OBJ};
  errno = 0;
  CHECK(pa_freelist_create(&one) == NULL);
  CHECK_EQ(errno, ENOMEM);
  pa_freelist_destroy(a);
  pa_freelist *c = pa_freelist_create(&one);
  CHECK(c != NULL);
  pa_freelist_free(c, 0, pa_freelist_alloc(c, 0));
  CHECK_EQ(stats_of(c, 0).misses, 1); /* a reused bin starts from zero */
  pa_freelist_destroy(b);
  pa_freelist_destroy(c);
  struct pa_freelist_config all = {"all", 16, 8, PA_FREELIST_MAX_SIZES, 4, PA_DOMAIN_OBJ};
  pa_freelist *d = pa_freelist_create(&all);
  CHECK(d != NULL);
  void *last = pa_freelist_alloc(d, PA_FREELIST_MAX_SIZES - 1); /* larger than 512: raw */
  CHECK(pa_usable_size(last) >= 16 + 8 * (PA_FREELIST_MAX_SIZES - 1));
  pa_freelist_free(d, PA_FREELIST_MAX_SIZES - 1, last);
  pa_freelist_destroy(d);
}

static void bad_index(void) {
  struct pa_freelist_config config = {"strs", 32, 0, 2, 4, PA_DOMAIN_OBJ};
  pa_freelist *list = pa_freelist_create(&config);
  void *obj = pa_freelist_alloc(list, 1);
  size_t before = check_pool_blocks_in_use();
  pa_freelist_free(list, 2, obj);
  /* reported, and freed through the domain: nothing lost */
  exit(check_pool_blocks_in_use() == before - 1 ? 0 : 40);
}

static void test_bad_index_reported(const char *argv0) {
  static char report[4096];
  char *plain[] = {NULL};
  int status = check_run_child(argv0, "bad_index", plain, report, sizeof report);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(strstr(report, "index 2 out of range for free list \"strs\" (0..1)") != NULL);
  char *debug[] = {"POOLALLOC_DEBUG=1", NULL};
  status = check_run_child(argv0, "bad_index", debug, report, sizeof report);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
  CHECK(strstr(report, "out of range for free list") != NULL);
  CHECK(strstr(report, "poolalloc: debug: aborting") != NULL);
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "bad_index") == 0) bad_index();
  const char *debug = getenv("POOLALLOC_DEBUG");
  debug_mode = debug && strcmp(debug, "0") != 0;
  test_bad_configs();
  test_one_size();
  test_family();
  test_thread_exit();
  test_destroy();
  test_capacity();
  if (!debug_mode) test_bad_index_reported(argv[0]);
  return check_done();
}
