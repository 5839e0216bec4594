/*
 * What handles buy and what they cost.
 *
 *   frag N pointers|handles|compact
 *       N objects of an interpreter's size mix (24..512 bytes) made, then a
 *       random 90% freed; prints the arenas held and the resident set.
 *       pointers: pa_malloc, nothing can move; handles: a handle table,
 *       before pa_compact; compact: the same after pa_compact (timed).
 *   read N pointers|handles
 *       100,000 live objects of 32 bytes read N times in a random order
 *       (the order precomputed), through a pointer array or a handle array
 *       with pa_handle_get: the price of the indirection.
 */
#include <poolalloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static unsigned long long next_random(unsigned long long *state) {
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  return *state * 2685821657736338717ULL;
}

/* Mostly small, as an interpreter's objects are. */
static size_t object_size(unsigned long long r) {
  static const size_t common[] = {24, 32, 40, 48, 56, 64, 72, 88, 104, 120};
  if (r % 8 < 7) return common[(r >> 8) % 10];
  return 24 + (r >> 16) % 489;
}

static size_t resident_kib(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(f);
  }
  return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE) / 1024;
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void run_frag(long n, const char *mode) {
  bool pointers = strcmp(mode, "pointers") == 0;
  void **objects = pointers ? calloc((size_t)n, sizeof *objects) : NULL;
  pa_handle *handles = pointers ? NULL : calloc((size_t)n, sizeof *handles);
  pa_handles *table = pointers ? NULL : pa_handles_create();
  unsigned long long rng = 9;
  size_t live = 0;
  for (long i = 0; i < n; i++) {
    size_t size = object_size(next_random(&rng));
    void *obj;
    if (pointers) {
      obj = objects[i] = pa_malloc(size);
    } else {
      handles[i] = pa_handle_alloc(table, size);
      obj = pa_handle_get(table, handles[i]);
    }
    memset(obj, 1, size);
  }
  for (long i = 0; i < n; i++) {
    if (next_random(&rng) % 10 == 0) {
      live++;
      continue;
    }
    if (pointers)
      pa_free(objects[i]);
    else
      pa_handle_free(table, handles[i]);
  }
  pa_collect();
  double compact_ms = 0;
  struct pa_compact_stats c = {0};
  if (strcmp(mode, "compact") == 0) {
    double start = now_ms();
    pa_compact(table, &c);
    compact_ms = now_ms() - start;
  }
  struct pa_stats s;
  pa_stats_get(&s);
  printf("frag %s: %zu live of %ld; arenas held %zu (%zu KiB); resident %zu KiB; "
         "compaction %.1f ms, %zu objects moved\n",
         mode, live, n, s.arenas_current, s.arenas_current * s.arena_size / 1024,
         resident_kib(), compact_ms, c.objects_moved);
}

enum { READ_OBJECTS = 100000 };

static void run_read(long n, const char *mode) {
  bool pointers = strcmp(mode, "pointers") == 0;
  static long *objects[READ_OBJECTS];
  static pa_handle handles[READ_OBJECTS];
  static unsigned order[READ_OBJECTS];
  pa_handles *table = pa_handles_create();
  unsigned long long rng = 3;
  for (unsigned i = 0; i < READ_OBJECTS; i++) {
    if (pointers) {
      objects[i] = pa_malloc(32);
      objects[i][0] = i;
    } else {
      handles[i] = pa_handle_alloc(table, 32);
      ((long *)pa_handle_get(table, handles[i]))[0] = i;
    }
    order[i] = (unsigned)(next_random(&rng) % READ_OBJECTS);
  }
  long sum = 0;
  for (long r = 0; r < n; r++) {
    unsigned i = order[r % READ_OBJECTS];
    if (pointers)
      sum += objects[i][0];
    else
      sum += ((long *)pa_handle_get(table, handles[i]))[0];
  }
  printf("read %s: sum %ld\n", mode, sum);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s frag|read N pointers|handles|compact\n", argv[0]);
    return 2;
  }
  long n = atol(argv[2]);
  if (strcmp(argv[1], "frag") == 0)
    run_frag(n, argv[3]);
  else if (strcmp(argv[1], "read") == 0)
    run_read(n, argv[3]);
  else
    return 2;
  return 0;
}
