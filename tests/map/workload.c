/* A small program with a known heap for the `poolalloc run` tests: two
 * threads fill pools of two size classes, half the blocks are freed, the
 * rest at the end; it runs long enough for several samples and exits with
 * the status given as its argument. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAIN_BLOCKS = 30000, WORKER_BLOCKS = 20000 };
static void *main_blocks[MAIN_BLOCKS], *worker_blocks[WORKER_BLOCKS];

static void pause_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000};
  nanosleep(&t, NULL);
}

static void *worker(void *arg) {
  (void)arg;
  for (int i = 0; i < WORKER_BLOCKS; i++) {
    worker_blocks[i] = malloc(100);
    memset(worker_blocks[i], 1, 100);
  }
  return NULL;
}

int main(int argc, char **argv) {
  for (int i = 0; i < MAIN_BLOCKS; i++) {
    main_blocks[i] = malloc(24);
    memset(main_blocks[i], 2, 24);
  }
  pthread_t thread;
  pthread_create(&thread, NULL, worker, NULL);
  pthread_join(thread, NULL);
  pause_ms(120);
  for (int i = 0; i < MAIN_BLOCKS; i += 2) free(main_blocks[i]);
  for (int i = 0; i < WORKER_BLOCKS; i += 2) free(worker_blocks[i]);
  pause_ms(120);
  for (int i = 1; i < MAIN_BLOCKS; i += 2) free(main_blocks[i]);
  for (int i = 1; i < WORKER_BLOCKS; i += 2) free(worker_blocks[i]);
  pause_ms(60);
  return argc > 1 ? atoi(argv[1]) : 0;
}
