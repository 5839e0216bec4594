/* The allocator at work: a workload shaped like an interpreter's (many small
 * objects of a few sizes, a long-lived part and churn, some large buffers,
 * threads freeing each other's objects), then the statistics at its peak
 * and after everything is freed. */
#include <poolalloc.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define OBJECTS 200000

struct node {
  struct node *next;
  long value;
  char name[15]; /* 31 bytes in all: the 32-byte class */
};

static void *worker(void *arg) {
  struct node **handoff = arg;
  for (int i = 0; i < OBJECTS / 4; i++) {
    struct node *n = pa_malloc(sizeof *n);
    n->value = i;
    n->next = *handoff;
    *handoff = n;
  }
  return NULL;
}

int main(void) {
  struct node *list = NULL;
  for (long i = 0; i < OBJECTS; i++) {
    struct node *n = pa_malloc(sizeof *n);
    n->value = i;
    snprintf(n->name, sizeof n->name, "obj%ld", i);
    n->next = list;
    list = n;
  }
  void *strings[5000];
  for (int i = 0; i < 5000; i++) strings[i] = pa_malloc(8 + (size_t)(i % 500));
  void *buffers[20];
  for (int i = 0; i < 20; i++) buffers[i] = pa_calloc(1, 4096 * (size_t)(i + 1));

  struct node *from_thread = NULL;
  pthread_t t;
  pthread_create(&t, NULL, worker, &from_thread);
  pthread_join(t, NULL);

  printf("== poolalloc demo: %d objects of %zu bytes, 5000 strings, 20 buffers, "
         "%d objects from a second thread ==\n\n",
         OBJECTS, sizeof(struct node), OBJECTS / 4);
  pa_stats_print(stdout);

  long sum = 0;
  while (list) {
    struct node *next = list->next;
    sum += list->value;
    pa_free(list);
    list = next;
  }
  while (from_thread) { /* frees into the exited thread's pools */
    struct node *next = from_thread->next;
    pa_free(from_thread);
    from_thread = next;
  }
  for (int i = 0; i < 5000; i++) pa_free(strings[i]);
  for (int i = 0; i < 20; i++) pa_free(buffers[i]);
  pa_collect();
  printf("\n== after freeing everything and pa_collect() (checksum %ld) ==\n\n", sum);
  pa_stats_print(stdout);
  return 0;
}
