/* A tiny test harness: CHECK records a failure with its place and goes on;
 * check_done() prints the closing "N passed, N failed" line and returns the
 * exit status. */
#ifndef POOLALLOC_CHECK_H
#define POOLALLOC_CHECK_H

#include <poolalloc.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (cond) {                                                                \
      check_passed++;                                                          \
    } else {                                                                   \
      check_failed++;                                                          \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

#define CHECK_EQ(a, b)                                                          \
  do {                                                                          \
    unsigned long long check_a_ = (unsigned long long)(a);                      \
    unsigned long long check_b_ = (unsigned long long)(b);                      \
    if (check_a_ == check_b_) {                                                 \
      check_passed++;                                                           \
    } else {                                                                    \
      check_failed++;                                                           \
      fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%llu != %llu)\n",      \
              __FILE__, __LINE__, #a, #b, check_a_, check_b_);                  \
    }                                                                           \
  } while (0)

static inline int check_done(void) {
  printf("%d passed, %d failed\n", check_passed, check_failed);
  return check_failed ? 1 : 0;
}

/* A small deterministic generator (xorshift64*), so runs are repeatable. */
static inline unsigned long long check_random(unsigned long long *state) {
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  return *state * 2685821657736338717ULL;
}

/* The block a request of n bytes (1..512) takes through a domain whose
 * results are 16-byte aligned (MEM and malloc, handle objects): the next
 * multiple of 16, in every geometry. */
static inline size_t check_block16(size_t n) { return (n + 15) & ~(size_t)15; }

/* The alignment contract: every result for a request of 16 bytes or more
 * is 16-byte aligned.  Sizes 1..1024 one by one, then about an eighth apart
 * up to 1 MiB, all kept live at once so they land at different places;
 * returns how many results break the contract (each named on stderr), and
 * fails a NULL result as one. */
#define CHECK_SWEEP_MAX ((size_t)1 << 20)
static inline size_t check_sweep_next(size_t n) { return n < 1024 ? n + 1 : n + n / 8; }
static inline size_t check_alignment_sweep(const char *name, void *(*alloc)(size_t),
                                           void (*release)(void *)) {
  static void *kept[1024 + 64];
  size_t count = 0, bad = 0;
  for (size_t n = 1; n <= CHECK_SWEEP_MAX && count < sizeof kept / sizeof *kept;
       n = check_sweep_next(n)) {
    unsigned char *p = alloc(n);
    if (p == NULL || (n >= 16 && (size_t)p % 16 != 0)) {
      if (bad++ < 4) fprintf(stderr, "%s(%zu) = %p: not 16-byte aligned\n", name, n, (void *)p);
    }
    if (p) p[0] = p[n - 1] = 1;
    kept[count++] = p;
  }
  while (count > 0) release(kept[--count]);
  return bad;
}

/* An entry point for the sweep: how it allocates n bytes, and frees. */
struct check_entry {
  const char *name;
  void *(*alloc)(size_t);
  void (*release)(void *);
};
#define CHECK_ALIGNMENT_SWEEPS(entries)                                                  \
  for (size_t check_i_ = 0; check_i_ < sizeof(entries) / sizeof *(entries); check_i_++) \
  CHECK_EQ(check_alignment_sweep((entries)[check_i_].name, (entries)[check_i_].alloc,     \
                                 (entries)[check_i_].release),                           \
           0)

/* Blocks the pools have handed out and not taken back, over all classes. */
static inline size_t check_pool_blocks_in_use(void) {
  struct pa_stats s;
  pa_stats_get(&s);
  size_t total = 0;
  for (size_t i = 0; i < s.size_classes; i++) total += s.classes[i].blocks_in_use;
  return total;
}

/* Runs this program as `argv0 name` with the given environment; returns
 * its wait status and what it wrote to stderr. */
static inline int check_run_child(const char *argv0, const char *name, char *const env[],
                                  char *out, size_t size) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipe_fds[1], 2);
    close(pipe_fds[0]);
    execle(argv0, argv0, name, (char *)NULL, env);
    _exit(127);
  }
  close(pipe_fds[1]);
  size_t used = 0;
  ssize_t n;
  while (used < size - 1 && (n = read(pipe_fds[0], out + used, size - 1 - used)) > 0)
    used += (size_t)n;
  out[used] = 0;
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

#endif
