/* A program that links the static library and calls only pa_malloc,
 * pa_free and pa_stats_get still gets the process's life, which no other
 * file calls (src/runtime.c): a thread's exit gives its heap up for the
 * next thread, and POOLALLOC_SHOW_STATS prints at exit (the ctest entry
 * static_link_exit_report reads that). */
#include <pthread.h>

#include "check.h"

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
  pa_free(pa_malloc(16));
  run_thread();
  struct pa_stats s;
  pa_stats_get(&s);
  CHECK_EQ(s.heaps, 2);
  CHECK_EQ(s.heaps_abandoned, 1);
  run_thread(); /* takes the first thread's heap */
  pa_stats_get(&s);
  CHECK_EQ(s.heaps, 2);
  CHECK_EQ(s.heaps_abandoned, 1);
  return check_done();
}
