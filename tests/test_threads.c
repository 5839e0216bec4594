/* Eight threads in four producer/consumer pairs: each thread allocates
 * blocks, signs them and hands them to its partner, which checks and frees
 * them (every free is a cross-thread free).  Some threads exit still owning
 * live blocks that the main thread frees afterwards.  When all are gone,
 * the statistics show every block returned and every arena released. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h"

#define PAIRS 4
#define QUEUE 256

struct queue {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  void *items[QUEUE];
  size_t head, tail;
};

struct worker {
  struct queue *out, *in;
  unsigned id;
  long messages;
  long corrupt;
  void *leftovers[64]; /* still live when the thread exits */
};

static void queue_push(struct queue *q, void *item) {
  pthread_mutex_lock(&q->lock);
  while (q->tail - q->head == QUEUE) pthread_cond_wait(&q->changed, &q->lock);
  q->items[q->tail++ % QUEUE] = item;
  pthread_cond_broadcast(&q->changed);
  pthread_mutex_unlock(&q->lock);
}

static void *queue_pop(struct queue *q) {
  pthread_mutex_lock(&q->lock);
  while (q->tail == q->head) pthread_cond_wait(&q->changed, &q->lock);
  void *item = q->items[q->head++ % QUEUE];
  pthread_cond_broadcast(&q->changed);
  pthread_mutex_unlock(&q->lock);
  return item;
}

/* A message is a block whose first word is its size, then a signature. */
static void *make_message(unsigned id, unsigned long long *rng) {
  unsigned long long r = check_random(rng);
  size_t size = r % 8 == 0 ? 600 + r % 2000 : 16 + (r >> 20) % 497;
  unsigned char *p = pa_malloc(size);
  memcpy(p, &size, sizeof size);
  memset(p + sizeof size, (int)id, size - sizeof size);
  return p;
}

static bool message_ok(const unsigned char *p, unsigned from) {
  size_t size;
  memcpy(&size, p, sizeof size);
  for (size_t i = sizeof size; i < size; i++)
    if (p[i] != (unsigned char)from) return false;
  return true;
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  unsigned long long rng = 1000 + w->id;
  unsigned partner = w->id ^ 1;
  for (long i = 0; i < w->messages; i++) {
    queue_push(w->out, make_message(w->id, &rng));
    unsigned char *got = queue_pop(w->in);
    if (!message_ok(got, partner)) w->corrupt++;
    pa_free(got); /* allocated by the partner */
  }
  for (int i = 0; i < 64; i++) w->leftovers[i] = make_message(w->id, &rng);
  return NULL;
}

int main(void) {
  static struct queue queues[PAIRS * 2];
  static struct worker workers[PAIRS * 2];
  pthread_t threads[PAIRS * 2];
  long messages = getenv("POOLALLOC_TEST_SMALL") ? 5000 : 50000;
  for (unsigned i = 0; i < PAIRS * 2; i++) {
    pthread_mutex_init(&queues[i].lock, NULL);
    pthread_cond_init(&queues[i].changed, NULL);
  }
  for (unsigned i = 0; i < PAIRS * 2; i++) {
    workers[i] = (struct worker){.out = &queues[i], .in = &queues[i ^ 1], .id = i,
                                 .messages = messages};
    pthread_create(&threads[i], NULL, worker_main, &workers[i]);
  }
  long corrupt = 0;
  for (unsigned i = 0; i < PAIRS * 2; i++) {
    pthread_join(threads[i], NULL);
    corrupt += workers[i].corrupt;
  }
  CHECK_EQ(corrupt, 0);

  struct pa_stats s;
  pa_stats_get(&s);
  CHECK_EQ(s.heaps_abandoned, s.heaps); /* every worker gave its heap up */
  CHECK(s.heaps >= 1 && s.heaps <= PAIRS * 2);

  /* Blocks of exited threads, freed from main: remote frees into
   * abandoned heaps, folded back by pa_collect(). */
  for (unsigned i = 0; i < PAIRS * 2; i++)
    for (int j = 0; j < 64; j++) {
      if (!message_ok(workers[i].leftovers[j], i)) corrupt++;
      pa_free(workers[i].leftovers[j]);
    }
  CHECK_EQ(corrupt, 0);
  pa_collect();
  pa_stats_get(&s);
  size_t in_use = 0;
  for (size_t c = 0; c < s.size_classes; c++) in_use += s.classes[c].blocks_in_use;
  CHECK_EQ(in_use, 0);
  CHECK_EQ(s.bytes_in_use, 0);
  CHECK_EQ(s.pools_used + s.pools_full, 0);
  CHECK_EQ(s.arenas_current, 0);
  CHECK_EQ(s.raw_allocations, s.raw_frees);
  return check_done();
}
