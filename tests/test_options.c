/* The POOLALLOC_* environment variables, each in a child process whose
 * stderr is read back: VERBOSE reports the options and a failed map,
 * FAIL_MAPS makes maps fail (from the Nth on, or only N to M), SHOW_STATS prints the statistics at exit
 * to stderr or appends them to a file, ARENA_DECAY_MS sets the arena decay
 * delay (a bad value is reported and the default kept). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "internal.h"

/* Runs body in a child with the given environment; returns its stderr. */
static void run_child(const char *const env[], int (*body)(void), char *out, size_t size, int *status) {
  int fds[2];
  if (pipe(fds) != 0) abort();
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    for (int i = 0; env[i]; i += 2) setenv(env[i], env[i + 1], 1);
    exit(body());
  }
  close(fds[1]);
  size_t got = 0;
  ssize_t n;
  while (got < size - 1 && (n = read(fds[0], out + got, size - 1 - got)) > 0) got += (size_t)n;
  out[got] = '\0';
  close(fds[0]);
  waitpid(pid, status, 0);
}

/* The heap's metadata map succeeds, the arena's fails. */
static int allocate_when_arenas_fail(void) {
  errno = 0;
  void *p = pa_malloc(16);
  return p == NULL && errno == ENOMEM ? 0 : 1;
}

static int allocate_some(void) {
  for (int i = 0; i < 1000; i++) pa_free(pa_malloc(24));
  return 0;
}

/* With maps 2-2 refused: the arena map fails, the next one is given. */
static int allocate_around_window(void) {
  errno = 0;
  void *refused = pa_malloc(16);
  if (refused != NULL || errno != ENOMEM) return 1;
  void *given = pa_malloc(16);
  if (given == NULL) return 2;
  pa_free(given);
  return _pa_os_maps() >= 3 && _pa_os_failures_injected() == 1 ? 0 : 3;
}

/* Exits with the decay delay in force, in units of 10 ms (exit codes
 * stop at 255). */
static int report_decay(void) {
  pa_free(pa_malloc(16));
  return (int)(pa_arena_decay_ms(-1) / 10);
}

static void test_arena_decay(char *err, size_t size) {
  int status;
  const char *const set[] = {"POOLALLOC_ARENA_DECAY_MS", "2500", NULL};
  run_child(set, report_decay, err, size, &status);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 250);
  CHECK_EQ(strlen(err), 0);
  const char *const bad[] = {"POOLALLOC_ARENA_DECAY_MS", "10ms", NULL};
  run_child(bad, report_decay, err, size, &status);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == PA_ARENA_DECAY_DEFAULT_MS / 10);
  CHECK(strstr(err, "poolalloc: POOLALLOC_ARENA_DECAY_MS=10ms ignored: expected 0 to 3600000") != NULL);
  const char *const negative[] = {"POOLALLOC_ARENA_DECAY_MS", "-1", NULL};
  run_child(negative, report_decay, err, size, &status);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == PA_ARENA_DECAY_DEFAULT_MS / 10);
  CHECK(strstr(err, "POOLALLOC_ARENA_DECAY_MS=-1 ignored") != NULL);
}

int main(void) {
  static char err[65536];
  test_arena_decay(err, sizeof err);
  int status;
  const char *const failing[] = {"POOLALLOC_VERBOSE", "1", "POOLALLOC_FAIL_MAPS", "2", NULL};
  run_child(failing, allocate_when_arenas_fail, err, sizeof err, &status);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(strstr(err, "poolalloc: options: POOLALLOC_SHOW_STATS=0 POOLALLOC_VERBOSE=1") != NULL);
  CHECK(strstr(err, "poolalloc: mmap of") != NULL);
  CHECK(strstr(err, "bytes failed: injected failure") != NULL);

  const char *const window[] = {"POOLALLOC_FAIL_MAPS", "2-2", NULL};
  run_child(window, allocate_around_window, err, sizeof err, &status);
  CHECK(WIFEXITED(status));
  CHECK_EQ(WEXITSTATUS(status), 0);
  CHECK_EQ(strlen(err), 0);

  const char *const malformed[] = {"POOLALLOC_FAIL_MAPS", "5-3", NULL};
  run_child(malformed, allocate_some, err, sizeof err, &status);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(strstr(err, "poolalloc: POOLALLOC_FAIL_MAPS=5-3 ignored: expected N or N-M") != NULL);

  const char *const to_stderr[] = {"POOLALLOC_SHOW_STATS", "1", NULL};
  run_child(to_stderr, allocate_some, err, sizeof err, &status);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(strstr(err, "poolalloc statistics at exit of process") != NULL);
  CHECK(strstr(err, "# blocks handed out by the pools   =                 1,000") != NULL);

  char path[] = "/tmp/poolalloc-stats-XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  const char *const to_file[] = {"POOLALLOC_SHOW_STATS", path, NULL};
  run_child(to_file, allocate_some, err, sizeof err, &status);
  run_child(to_file, allocate_some, err, sizeof err, &status);
  CHECK_EQ(strlen(err), 0); /* nothing on stderr */
  FILE *f = fopen(path, "r");
  size_t reports = 0;
  char line[256];
  while (fgets(line, sizeof line, f)) reports += strstr(line, "statistics at exit") != NULL;
  fclose(f);
  unlink(path);
  CHECK_EQ(reports, 2); /* appended, one per process */
  return check_done();
}
