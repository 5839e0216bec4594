/*
 * A Larson-style server (Larson and Krishnan, 1998): each of T chains owns
 * an array of slots; a thread of the chain replaces random slots with new
 * blocks of 8..1000 bytes (freeing the old one), then ends, and a new
 * thread inherits the array.  Most blocks die in a thread that did not make
 * them, as in a server whose worker threads come and go.
 *
 *   larson THREADS LIVES OPS [SLOTS]
 *     THREADS chains run at once, each through LIVES threads, each thread
 *     doing OPS replacements on SLOTS slots (5,000 by default).
 *
 * Prints the operations done and a checksum of the sizes, the same for
 * every allocator; time it from outside (bench/larson.sh).  Plain malloc
 * and free: other allocators come in with LD_PRELOAD.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_SIZE 8
#define MAX_SIZE 1000

struct chain {
  char **slots;
  size_t nslots;
  long ops;
  unsigned long long random;
  unsigned long long checksum;
};

static unsigned long long next_random(unsigned long long *state) {
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  return *state * 2685821657736338717ULL;
}

/* One thread's life: OPS replacements, each block's first byte written so
 * the allocation is touched as a server's would be. */
static void *life(void *arg) {
  struct chain *c = arg;
  for (long i = 0; i < c->ops; i++) {
    unsigned long long r = next_random(&c->random);
    size_t slot = (size_t)(r % c->nslots);
    size_t size = MIN_SIZE + (size_t)((r >> 32) % (MAX_SIZE - MIN_SIZE + 1));
    free(c->slots[slot]);
    char *p = malloc(size);
    if (p == NULL) {
      fprintf(stderr, "larson: out of memory\n");
      exit(1);
    }
    p[0] = (char)size;
    c->slots[slot] = p;
    c->checksum += size;
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 4 || argc > 5) {
    fprintf(stderr, "usage: %s THREADS LIVES OPS [SLOTS]\n", argv[0]);
    return 2;
  }
  int threads = atoi(argv[1]);
  long lives = atol(argv[2]), ops = atol(argv[3]);
  size_t nslots = argc == 5 ? (size_t)atol(argv[4]) : 5000;
  if (threads < 1 || threads > 1024 || lives < 1 || ops < 1 || nslots < 1) return 2;
  struct chain *chains = calloc((size_t)threads, sizeof *chains);
  pthread_t *running = calloc((size_t)threads, sizeof *running);
  for (int t = 0; t < threads; t++) {
    chains[t] = (struct chain){calloc(nslots, sizeof(char *)), nslots, ops, 0x9e3779b97f4a7c15ULL + t, 0};
  }
  for (long l = 0; l < lives; l++) {
    for (int t = 0; t < threads; t++) pthread_create(&running[t], NULL, life, &chains[t]);
    for (int t = 0; t < threads; t++) pthread_join(running[t], NULL);
  }
  unsigned long long checksum = 0;
  for (int t = 0; t < threads; t++) {
    checksum += chains[t].checksum;
    for (size_t i = 0; i < nslots; i++) free(chains[t].slots[i]);
    free(chains[t].slots);
  }
  printf("%ld operations, checksum %llu\n", (long)threads * lives * ops, checksum);
  free(chains);
  free(running);
  return 0;
}
