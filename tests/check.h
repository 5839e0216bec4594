/* A tiny test harness: CHECK records a failure with its place and goes on;
 * check_done() prints the closing "N passed, N failed" line and returns the
 * exit status. */
#ifndef POOLALLOC_CHECK_H
#define POOLALLOC_CHECK_H

#include <stdio.h>

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

#endif
