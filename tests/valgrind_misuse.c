/* Three bugs memcheck must see in pool blocks: a write one byte past a
 * block, a read of a freed block, and a leak.  Run by valgrind_misuse.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  char *block = malloc(200); /* first of its class: the next block is virgin */
  memset(block, 1, 200);
  block[200] = 2; /* one past the end */
  free(block);
  volatile char after_free = block[100];
  (void)after_free;
  char *leaked = malloc(32);
  memset(leaked, 3, 32);
  leaked = NULL;
  puts("done");
  return 0;
}
