/* AddressSanitizer builds poison free pool blocks: a read of a freed block
 * is reported (in a child, whose stderr is checked) instead of passing. */
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "internal.h"

int main(void) {
  int pipe_fds[2];
  CHECK(pipe(pipe_fds) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipe_fds[1], 2);
    char *block = pa_malloc(64);
    memset(block, 1, 64);
    pa_free(block);
    volatile char after_free = block[16];
    (void)after_free;
    _exit(0); /* not reached: ASan stops the read above */
  }
  close(pipe_fds[1]);
  char report[8192] = {0};
  size_t got = 0;
  ssize_t n;
  while (got < sizeof report - 1 && (n = read(pipe_fds[0], report + got, sizeof report - 1 - got)) > 0)
    got += (size_t)n;
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
  CHECK(strstr(report, "use-after-poison") != NULL);
  CHECK(strstr(report, "READ of size 1") != NULL);
  /* a live block is not poisoned */
  char *live = pa_malloc(64);
  memset(live, 2, 64);
  CHECK(live[63] == 2);
  pa_free(live);
  return check_done();
}
