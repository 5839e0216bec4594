/* AddressSanitizer builds poison free pool blocks and objects kept on free
 * lists: a read of either is reported (in a child, whose stderr is checked)
 * instead of passing.
 *
 *   test_asan_poison              the checks
 *   test_asan_poison pool|list    the bad read (a child)
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h"

static void read_freed_block(void) {
  char *block = pa_malloc(64);
  memset(block, 1, 64);
  pa_free(block);
  volatile char after_free = block[16];
  (void)after_free;
}

static void read_kept_object(void) {
  struct pa_freelist_config config = {"kept", 64, 0, 1, 4, PA_DOMAIN_OBJ};
  pa_freelist *list = pa_freelist_create(&config);
  char *obj = pa_freelist_alloc(list, 0);
  memset(obj, 1, 64);
  pa_freelist_free(list, 0, obj);
  volatile char after_free = obj[16];
  (void)after_free;
}

static void expect_reported(const char *argv0, const char *name) {
  static char report[8192];
  char *env[] = {NULL};
  int status = check_run_child(argv0, name, env, report, sizeof report);
  CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
  CHECK(strstr(report, "use-after-poison") != NULL);
  CHECK(strstr(report, "READ of size 1") != NULL);
}

int main(int argc, char **argv) {
  if (argc == 2) {
    if (strcmp(argv[1], "pool") == 0) read_freed_block();
    if (strcmp(argv[1], "list") == 0) read_kept_object();
    return 0; /* not reached: ASan stops the read */
  }
  expect_reported(argv[0], "pool");
  expect_reported(argv[0], "list");
  /* a live block is not poisoned, nor an object taken off a free list */
  char *live = pa_malloc(64);
  memset(live, 2, 64);
  CHECK(live[63] == 2);
  pa_free(live);
  struct pa_freelist_config config = {"taken", 64, 0, 1, 4, PA_DOMAIN_OBJ};
  pa_freelist *list = pa_freelist_create(&config);
  char *obj = pa_freelist_alloc(list, 0);
  pa_freelist_free(list, 0, obj);
  obj = pa_freelist_alloc(list, 0);
  memset(obj, 3, 64);
  CHECK(obj[63] == 3);
  pa_freelist_free(list, 0, obj);
  pa_freelist_destroy(list);
  return check_done();
}
