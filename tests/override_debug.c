/* Run under libpoolalloc-override.so by override_debug.sh: plain malloc and
 * free, with the debug hooks and tracing set from the environment. */
#include <stdlib.h>
#include <string.h>

static void poke(volatile char *at, char value) { *at = value; }

/* Global, so dladdr can name it (linked with -rdynamic). */
__attribute__((noinline)) void leaky_function(void) {
  for (int i = 0; i < 5; i++) {
    void *leak = malloc(48);
    __asm__ volatile("" : : "r"(leak) : "memory");
  }
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "overflow") == 0) {
    char *p = malloc(24);
    poke(p + 24, 'X');
    free(p);
  } else if (strcmp(mode, "use_after_free") == 0) {
    char *p = malloc(100);
    free(p);
    poke(p + 50, 'X');
    free(malloc(100));
  } else if (strcmp(mode, "cross_free") == 0) {
    /* memory from the C++ operator, released by free: the same domain */
    char *p = realloc(NULL, 10);
    free(p);
  } else if (strcmp(mode, "leak") == 0) {
    leaky_function();
  }
  return 0;
}
