/* Threads at scale, TSan-clean: threads that only allocate hand every block
 * (small, medium and large) to threads that only free it; then thousands
 * of short threads, each leaving live blocks behind for the next to free.
 * At the end every block has come back: the pools' traffic balances, no
 * large block is live, and pa_collect() leaves nothing in use. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h"

enum { PRODUCERS = 2, CONSUMERS = 2, QUEUE = 512, LEFT = 8 };

struct queue {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  void *items[QUEUE];
  size_t head, tail;
  int producers_left;
};
static struct queue queue = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0, PRODUCERS};

static long messages;
static long corrupt;
static pthread_mutex_t corrupt_lock = PTHREAD_MUTEX_INITIALIZER;

/* A block whose first word is its size and whose bytes then all are
 * `tag`: mostly small, one in eight medium, one in sixty-four large. */
static void *make(unsigned long long *rng, unsigned char tag) {
  unsigned long long r = check_random(rng);
  size_t size = r % 64 == 0  ? PA_LARGE_REQUEST_THRESHOLD + (r >> 40) % 100000
                : r % 8 == 0 ? 600 + (r >> 40) % 30000
                             : 16 + (r >> 40) % 497;
  unsigned char *p = pa_malloc(size);
  memcpy(p, &size, sizeof size);
  memset(p + sizeof size, tag, size - sizeof size);
  return p;
}

/* Checks and frees a block of make's; false if a byte changed. */
static bool check_free(unsigned char *p, unsigned char tag) {
  size_t size;
  memcpy(&size, p, sizeof size);
  bool ok = pa_usable_size(p) >= size;
  for (size_t i = sizeof size; i < size; i += 97) ok &= p[i] == tag;
  ok &= p[size - 1] == tag;
  pa_free(p);
  return ok;
}

static void *producer(void *arg) {
  unsigned long long rng = 77 + (uintptr_t)arg;
  for (long i = 0; i < messages; i++) {
    void *p = make(&rng, 0x5a);
    pthread_mutex_lock(&queue.lock);
    while (queue.tail - queue.head == QUEUE) pthread_cond_wait(&queue.changed, &queue.lock);
    queue.items[queue.tail++ % QUEUE] = p;
    pthread_cond_broadcast(&queue.changed);
    pthread_mutex_unlock(&queue.lock);
  }
  pthread_mutex_lock(&queue.lock);
  queue.producers_left--;
  pthread_cond_broadcast(&queue.changed);
  pthread_mutex_unlock(&queue.lock);
  return NULL;
}

static void *consumer(void *arg) {
  (void)arg;
  long bad = 0;
  for (;;) {
    pthread_mutex_lock(&queue.lock);
    while (queue.tail == queue.head && queue.producers_left > 0)
      pthread_cond_wait(&queue.changed, &queue.lock);
    if (queue.tail == queue.head) {
      pthread_mutex_unlock(&queue.lock);
      break;
    }
    unsigned char *p = queue.items[queue.head++ % QUEUE];
    pthread_cond_broadcast(&queue.changed);
    pthread_mutex_unlock(&queue.lock);
    bad += !check_free(p, 0x5a);
  }
  pthread_mutex_lock(&corrupt_lock);
  corrupt += bad;
  pthread_mutex_unlock(&corrupt_lock);
  return NULL;
}

static void test_producers_and_consumers(void) {
  pthread_t threads[PRODUCERS + CONSUMERS];
  for (uintptr_t i = 0; i < PRODUCERS; i++) pthread_create(&threads[i], NULL, producer, (void *)i);
  for (int i = PRODUCERS; i < PRODUCERS + CONSUMERS; i++)
    pthread_create(&threads[i], NULL, consumer, NULL);
  for (int i = 0; i < PRODUCERS + CONSUMERS; i++) pthread_join(threads[i], NULL);
  CHECK_EQ(corrupt, 0);
}

/* Each short thread frees the blocks the one before it left, and leaves
 * LEFT of its own. */
static void *left[LEFT];
static void *short_life(void *arg) {
  unsigned long long rng = 1 + (uintptr_t)arg;
  long bad = 0;
  for (int i = 0; i < LEFT; i++) {
    if (left[i]) bad += !check_free(left[i], (unsigned char)((uintptr_t)arg - 1));
    left[i] = make(&rng, (unsigned char)(uintptr_t)arg);
  }
  corrupt += bad; /* the threads run one after another */
  return NULL;
}

static void test_thread_churn(long lives) {
  for (long i = 1; i <= lives; i++) {
    pthread_t thread;
    pthread_create(&thread, NULL, short_life, (void *)(uintptr_t)i);
    pthread_join(thread, NULL);
  }
  for (int i = 0; i < LEFT; i++) corrupt += !check_free(left[i], (unsigned char)lives);
  CHECK_EQ(corrupt, 0);
  struct pa_stats s;
  pa_stats_get(&s);
  CHECK(s.heaps <= 4 + PRODUCERS + CONSUMERS); /* exited threads' heaps are adopted */
}

int main(void) {
  bool small = getenv("POOLALLOC_TEST_SMALL") != NULL;
  messages = small ? 5000 : 50000;
  test_producers_and_consumers();
  test_thread_churn(small ? 1000 : 10000);
  pa_collect();
  struct pa_stats s;
  pa_stats_get(&s);
  CHECK_EQ(s.small_allocations, s.small_frees);
  CHECK_EQ(s.large_blocks, 0);
  CHECK_EQ(s.domains[PA_DOMAIN_MEM].large_allocations, s.domains[PA_DOMAIN_MEM].large_frees);
  CHECK_EQ(s.bytes_in_use, 0);
  CHECK_EQ(s.arenas_current, 0);
  return check_done();
}
