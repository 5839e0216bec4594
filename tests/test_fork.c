/* fork() while other threads allocate: the child can allocate and free,
 * including blocks that belonged to threads the child does not have. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "inline.h"

static atomic_bool stop;
static void *shared_blocks[4];

static void *churn(void *arg) {
  unsigned long long rng = (unsigned long long)(uintptr_t)arg + 1;
  void *live[32] = {0};
  while (!atomic_load(&stop)) {
    unsigned i = check_random(&rng) % 32;
    pa_free(live[i]);
    live[i] = pa_malloc(1 + check_random(&rng) % 700);
  }
  for (int i = 0; i < 32; i++) pa_free(live[i]);
  return NULL;
}

static void *make_shared(void *arg) {
  (void)arg;
  for (int i = 0; i < 4; i++) {
    shared_blocks[i] = pa_malloc(40);
    memset(shared_blocks[i], 7, 40);
  }
  return NULL;
}

static size_t bytes_in_use(void) {
  struct pa_stats s;
  pa_stats_get(&s);
  return s.bytes_in_use;
}

/* Small and medium sizes: every one is poolalloc's, so the child never
 * reaches the C library's malloc (GCC 12's AddressSanitizer malloc is not
 * fork-safe: a thread holding its lock at fork() would leave the child
 * blocked in it). */
#define CHILD_MAX_SIZE 600

/* The child holds the blocks the churn threads had live at the fork; it
 * cannot free those, so it checks that its own work balances out. */
static int child_work(void) {
  size_t at_start = bytes_in_use();
  void *blocks[1000];
  for (int i = 0; i < 1000; i++) {
    size_t size = (size_t)(i % CHILD_MAX_SIZE) + 1;
    blocks[i] = pa_malloc(size);
    if (blocks[i] == NULL) return 2;
    memset(blocks[i], 1, size);
  }
  for (int i = 0; i < 1000; i++) pa_free(blocks[i]);
  for (int i = 0; i < 4; i++) pa_free(shared_blocks[i]); /* owned by another heap */
  pa_collect();
  return bytes_in_use() == at_start - 4 * pa_class_block_size(pa_domain_class(PA_DOMAIN_MEM, 40)) ? 0 : 3;
}

int main(void) {
  pthread_t helper;
  pthread_create(&helper, NULL, make_shared, NULL);
  pthread_join(helper, NULL);

  pthread_t threads[3];
  for (uintptr_t i = 0; i < 3; i++) pthread_create(&threads[i], NULL, churn, (void *)i);
  int forks = getenv("POOLALLOC_TEST_SMALL") ? 5 : 40;
  int good_children = 0;
  for (int f = 0; f < forks; f++) {
    pid_t pid = fork();
    if (pid == 0) _exit(child_work());
    int status = -1;
    waitpid(pid, &status, 0);
    good_children += WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  atomic_store(&stop, true);
  for (int i = 0; i < 3; i++) pthread_join(threads[i], NULL);
  CHECK_EQ(good_children, forks);
  for (int i = 0; i < 4; i++) pa_free(shared_blocks[i]);
  pa_collect();
  CHECK_EQ(bytes_in_use(), 0);
  return check_done();
}
