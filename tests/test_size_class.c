/* Size classes: every request 1..512 lands in the smallest class of its
 * domain that holds it, blocks come back with that class's size and
 * alignment, and 0 bytes gives a unique, freeable pointer.  Medium requests
 * (513 bytes to the large threshold) take classes at most 25% apart, each
 * from runs of pools that hold two blocks or more and waste little.  MEM (malloc's
 * domain) rounds to 16, so all its blocks are 16-byte aligned; OBJ keeps
 * the build's spacing (the seeds' 8 bytes by default). */
#include <stdint.h>

#include "check.h"
#include "inline.h"

static void test_mapping(void) {
  CHECK_EQ(PA_SMALL_CLASSES, 512 / POOLALLOC_ALIGNMENT);
  CHECK_EQ(pa_class_block_size(pa_size_class(512)), 512);
  CHECK_EQ(pa_size_class(512), PA_SMALL_CLASSES - 1);
  CHECK_EQ(pa_class_block_size(pa_domain_class(PA_DOMAIN_OBJ, 1)), POOLALLOC_ALIGNMENT);
  CHECK_EQ(pa_class_block_size(pa_domain_class(PA_DOMAIN_MEM, 1)), 16);
  CHECK_EQ(pa_class_block_size(pa_domain_class(PA_DOMAIN_MEM, 17)), 32);
  for (size_t n = 1; n <= 512; n++) {
    size_t obj = pa_class_block_size(pa_domain_class(PA_DOMAIN_OBJ, n));
    CHECK(obj >= n && obj < n + POOLALLOC_ALIGNMENT);
    CHECK_EQ(obj % POOLALLOC_ALIGNMENT, 0);
    size_t mem = pa_class_block_size(pa_domain_class(PA_DOMAIN_MEM, n));
    CHECK(mem >= n && mem < n + 16);
    CHECK_EQ(mem % 16, 0);
    CHECK_EQ(mem, check_block16(n));
  }
}

/* Medium classes: ascending, at most 25% apart, the smallest that holds
 * each size, 16-byte multiples; the last one is the large threshold. */
static void test_medium_mapping(void) {
  CHECK_EQ(pa_class_block_size(PA_NUM_CLASSES - 1), PA_LARGE_REQUEST_THRESHOLD);
  CHECK_EQ(pa_class_block_size(PA_SMALL_CLASSES), 640);
  size_t previous = 512;
  for (unsigned cls = PA_SMALL_CLASSES; cls < PA_NUM_CLASSES; cls++) {
    size_t block = pa_class_block_size(cls);
    CHECK(block > previous && block * 4 <= previous * 5);
    CHECK_EQ(block % 128, 0);
    CHECK_EQ(pa_medium_class(block), cls);
    CHECK_EQ(pa_medium_class(previous + 1), cls);
    CHECK_EQ(pa_class_of(PA_DOMAIN_OBJ, block), cls);
    previous = block;
  }
}

/* Each class's run: within half an arena, two blocks at least, and a tail
 * too small for a block of at most an eighth of it wherever half an arena
 * allows one; a small class's the shortest that holds 256 blocks or a
 * quarter of an arena. */
static void test_run_lengths(void) {
  size_t worst = 0;
  for (unsigned cls = 0; cls < PA_NUM_CLASSES; cls++) {
    unsigned pools = _pa_class_run_pools(cls);
    size_t bytes = pools * PA_POOL_SIZE, block = pa_class_block_size(cls);
    CHECK(pools >= 1 && pools <= (PA_POOLS_PER_ARENA > 1 ? PA_POOLS_PER_ARENA / 2 : 1));
    CHECK(bytes / block >= 2);
    if (cls < PA_SMALL_CLASSES) {
      size_t target = 256 * block < PA_ARENA_SIZE / 4 ? 256 * block : PA_ARENA_SIZE / 4;
      CHECK(bytes >= target || pools == PA_POOLS_PER_ARENA / 2);
      CHECK((pools - 1) * PA_POOL_SIZE < target);
    }
    if (bytes % block * 8 > bytes) worst++;
  }
  CHECK_EQ(worst, 0);
}

/* Every request of a domain: its class's block, aligned as that class
 * promises, all of it writable. */
static void sweep(void *(*alloc)(size_t), void (*release)(void *), pa_domain domain) {
  for (size_t n = 1; n <= 512; n++) {
    unsigned char *p = alloc(n);
    size_t block = pa_class_block_size(pa_domain_class(domain, n));
    CHECK(p != NULL);
    CHECK_EQ(pa_usable_size(p), block);
    CHECK_EQ(pa_pool_of(p)->block_size, block);
    CHECK_EQ((uintptr_t)p % (block % 16 == 0 ? 16 : POOLALLOC_ALIGNMENT), 0);
    p[0] = 1;
    p[block - 1] = 2; /* the whole class size is usable */
    release(p);
  }
}

/* Each domain in turn, and MEM again once OBJ's pools of every class are
 * warm: a MEM request never takes an OBJ class's block. */
static void test_blocks_match_classes(void) {
  sweep(pa_malloc, pa_free, PA_DOMAIN_MEM);
  sweep(pa_mem_malloc, pa_mem_free, PA_DOMAIN_MEM);
  sweep(pa_obj_malloc, pa_obj_free, PA_DOMAIN_OBJ);
  sweep(pa_malloc, pa_free, PA_DOMAIN_MEM);
}

/* The object domain really hands out 8-aligned blocks 8 bytes apart in the
 * seeds' geometry: a 24-byte object takes 24 bytes, not 32. */
static void test_object_classes_stay_tight(void) {
  void *a = pa_obj_malloc(24), *b = pa_obj_malloc(24);
  CHECK_EQ(pa_usable_size(a), POOLALLOC_ALIGNMENT == 8 ? 24 : 32);
  CHECK_EQ(pa_pool_of(a), pa_pool_of(b));
  pa_obj_free(a);
  pa_obj_free(b);
}

static void test_zero_size(void) {
  void *a = pa_malloc(0), *b = pa_malloc(0);
  CHECK(a != NULL && b != NULL && a != b);
  CHECK(pa_usable_size(a) >= 1);
  CHECK(pa_arena_of(a) != NULL);
  CHECK_EQ((uintptr_t)a % 16, 0);
  pa_free(a);
  pa_free(b);
}

/* Blocks of medium classes: the class's size, usable whole, 16-aligned,
 * each class's block sizes that are multiples of a pool aligned to the
 * pool, and the block query answers for a pointer into any pool of a run. */
static void test_medium_blocks(void) {
  for (size_t n = 513; n <= PA_LARGE_REQUEST_THRESHOLD; n += n / 7) {
    unsigned char *p = pa_malloc(n);
    size_t block = pa_class_block_size((unsigned)pa_medium_class(n));
    CHECK(p != NULL);
    CHECK_EQ(pa_usable_size(p), block);
    CHECK_EQ((uintptr_t)p % 16, 0);
    if (block % PA_POOL_SIZE == 0) CHECK_EQ((uintptr_t)p % PA_POOL_SIZE, 0);
    p[0] = 1;
    p[block - 1] = 2;
    pa_block_info info = {0};
    CHECK(pa_block_of(p + block - 1, &info));
    CHECK(info.start == (char *)p && info.size == block && info.pool == pa_pool_of(p));
    CHECK(info.pool->run_pools == _pa_class_run_pools(info.size_class));
    pa_free(p);
  }
}

int main(void) {
  test_mapping();
  test_medium_mapping();
  test_run_lengths();
  test_medium_blocks();
  test_blocks_match_classes();
  test_object_classes_stay_tight();
  test_zero_size();
  return check_done();
}
