/* A program that links the static library and calls only pa_malloc,
 * pa_free and pa_stats_get still gets the process's life, which no other
 * file calls (src/runtime.c): a thread's exit gives its heap up for the
 * next thread, and POOLALLOC_SHOW_STATS prints at exit (the ctest entry
 * static_link_exit_report reads that).  A thread started by a constructor
 * that runs before poolalloc's, as other libraries' do before a preloaded
 * one's, gives its heap up too. */
#include <pthread.h>
#include <semaphore.h>

#include "check.h"

static pthread_t early;
static sem_t early_allocated, early_go;

/* Allocates before poolalloc's constructor has made the thread-exit key,
 * then, after it, enough to leave the fast path. */
static void *early_thread(void *arg) {
  (void)arg;
  pa_free(pa_malloc(64));
  sem_post(&early_allocated);
  sem_wait(&early_go);
  enum { N = 4096 };
  static void *blocks[N];
  for (int i = 0; i < N; i++) blocks[i] = pa_malloc(64);
  for (int i = 0; i < N; i++) pa_free(blocks[i]);
  return NULL;
}

__attribute__((constructor(101))) static void early_constructor(void) {
  sem_init(&early_allocated, 0, 0);
  sem_init(&early_go, 0, 0);
  if (pthread_create(&early, NULL, early_thread, NULL) == 0) sem_wait(&early_allocated);
}

static void *worker(void *arg) {
  (void)arg;
  for (int i = 0; i < 100; i++) pa_free(pa_malloc(64));
  return NULL;
}

static void run_thread(void) {
  pthread_t thread;
  if (pthread_create(&thread, NULL, worker, NULL) == 0) pthread_join(thread, NULL);
}

int main(void) {
  sem_post(&early_go);
  pthread_join(early, NULL);
  struct pa_stats s;
  pa_stats_get(&s);
  CHECK_EQ(s.heaps, 1);
  CHECK_EQ(s.heaps_abandoned, 1);
  pa_free(pa_malloc(16)); /* main's heap: the early thread's */
  run_thread();
  pa_stats_get(&s);
  CHECK_EQ(s.heaps, 2);
  CHECK_EQ(s.heaps_abandoned, 1);
  run_thread(); /* takes the first worker's heap */
  pa_stats_get(&s);
  CHECK_EQ(s.heaps, 2);
  CHECK_EQ(s.heaps_abandoned, 1);
  return check_done();
}
