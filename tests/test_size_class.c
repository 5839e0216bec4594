/* Size classes: every request 1..512 lands in the smallest class that holds
 * it, blocks come back with that class's size and alignment, and 0 bytes
 * gives a unique, freeable pointer. */
#include <stdint.h>

#include "check.h"
#include "internal.h"

static void test_mapping(void) {
  CHECK_EQ(PA_NUM_CLASSES, 512 / POOLALLOC_ALIGNMENT);
  CHECK_EQ(pa_class_block_size(pa_size_class(15)), 16);
  CHECK_EQ(pa_class_block_size(pa_size_class(1)), POOLALLOC_ALIGNMENT);
  CHECK_EQ(pa_class_block_size(pa_size_class(512)), 512);
  CHECK_EQ(pa_size_class(512), PA_NUM_CLASSES - 1);
  for (size_t n = 1; n <= 512; n++) {
    size_t block = pa_class_block_size(pa_size_class(n));
    CHECK(block >= n && block < n + POOLALLOC_ALIGNMENT);
    CHECK_EQ(block % POOLALLOC_ALIGNMENT, 0);
  }
}

static void test_blocks_match_classes(void) {
  for (size_t n = 1; n <= 512; n++) {
    unsigned char *p = pa_malloc(n);
    size_t block = pa_class_block_size(pa_size_class(n));
    CHECK(p != NULL);
    CHECK_EQ(pa_usable_size(p), block);
    CHECK_EQ(pa_pool_of(p)->block_size, block);
    CHECK_EQ((uintptr_t)p % (block % 16 == 0 ? 16 : POOLALLOC_ALIGNMENT), 0);
    p[0] = 1;
    p[block - 1] = 2; /* the whole class size is usable */
    pa_free(p);
  }
}

static void test_zero_size(void) {
  void *a = pa_malloc(0), *b = pa_malloc(0);
  CHECK(a != NULL && b != NULL && a != b);
  CHECK(pa_usable_size(a) >= 1);
  CHECK(pa_arena_of(a) != NULL);
  pa_free(a);
  pa_free(b);
}

int main(void) {
  test_mapping();
  test_blocks_match_classes();
  test_zero_size();
  return check_done();
}
