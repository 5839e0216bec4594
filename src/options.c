/*
 * Options from the environment, read once before the first heap is made,
 * and the messages poolalloc writes.  Messages go straight to fd 2 with
 * write(2): they may be written from inside malloc, where stdio is not safe.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct _pa_options _pa_options = {.arena_decay_ms = PA_ARENA_DECAY_DEFAULT_MS};

/* Where the statistics go at exit: a copy of stderr taken at start-up (some
 * programs close fd 2 before the destructors run, as GNU coreutils'
 * close_stdout does), or the file POOLALLOC_SHOW_STATS names, to which every
 * process appends (child processes' stderr stays clean). */
static int stats_fd = -1;
static char stats_path[PA_OPTION_PATH_MAX];

static bool option_enabled(const char *value) {
  return value && *value && strcmp(value, "0") != 0;
}

/* Paths longer than the buffer are dropped whole, with a message: a cut
 * path would write somewhere the user did not ask for. */
static void option_copy(char out[PA_OPTION_PATH_MAX], const char *value) {
  out[0] = '\0';
  if (value == NULL) return;
  if (strlen(value) >= PA_OPTION_PATH_MAX) {
    _pa_message("poolalloc: ignoring a path of %zu characters (at most %d)", strlen(value),
               PA_OPTION_PATH_MAX - 1);
    return;
  }
  strcpy(out, value);
}

bool _pa_options_expand_path(const char *pattern, char *out, size_t size) {
  size_t n = 0;
  if (pattern[0] == '\0') return false;
  for (const char *c = pattern; *c; c++) {
    char pid[16];
    const char *piece = pid;
    if (c[0] == '%' && c[1] == 'p') {
      snprintf(pid, sizeof pid, "%d", (int)getpid());
      c++;
    } else {
      pid[0] = *c;
      pid[1] = '\0';
    }
    size_t len = strlen(piece);
    if (n + len >= size) return false;
    memcpy(out + n, piece, len);
    n += len;
  }
  out[n] = '\0';
  return true;
}

/* POOLALLOC_FAIL_MAPS=N refuses the Nth OS map and every later one;
 * N-M refuses maps N to M only, so the program goes on after them. */
static void option_fail_maps(const char *text) {
  if (text == NULL || *text == '\0') return;
  char *end;
  unsigned long long first = strtoull(text, &end, 10), last = SIZE_MAX;
  if (*end == '-') last = strtoull(end + 1, &end, 10);
  if (*end != '\0' || first == 0 || last < first) {
    _pa_message("poolalloc: POOLALLOC_FAIL_MAPS=%s ignored: expected N or N-M, 1 <= N <= M", text);
    return;
  }
  _pa_os_fail_maps((size_t)first, (size_t)last);
}

/* POOLALLOC_ARENA_DECAY_MS=MS, 0 to PA_ARENA_DECAY_MAX_MS. */
static void option_arena_decay(const char *text) {
  _pa_options.arena_decay_ms = PA_ARENA_DECAY_DEFAULT_MS;
  if (text == NULL || *text == '\0') return;
  char *end;
  long long ms = strtoll(text, &end, 10);
  if (*end != '\0' || ms < 0 || ms > PA_ARENA_DECAY_MAX_MS) {
    _pa_message("poolalloc: POOLALLOC_ARENA_DECAY_MS=%s ignored: expected 0 to %ld (ms)", text,
               (long)PA_ARENA_DECAY_MAX_MS);
    return;
  }
  _pa_options.arena_decay_ms = (long)ms;
}

void _pa_options_init(void) {
  _pa_secure_init();
  const char *show_stats = getenv("POOLALLOC_SHOW_STATS");
  _pa_options.show_stats = option_enabled(show_stats);
  if (_pa_options.show_stats && strchr(show_stats, '/')) option_copy(stats_path, show_stats);
  _pa_options.verbose = option_enabled(getenv("POOLALLOC_VERBOSE"));
  _pa_options.debug = option_enabled(getenv("POOLALLOC_DEBUG"));
  const char *trace = getenv("POOLALLOC_TRACE");
  if (trace && *trace) {
    long frames = strtol(trace, NULL, 10);
    _pa_options.trace = frames < 0 ? 0 : frames > PA_TRACE_MAX_FRAMES ? PA_TRACE_MAX_FRAMES : (int)frames;
  }
  const char *sample = getenv("POOLALLOC_SAMPLE");
  if (sample && *sample) {
    long ms = strtol(sample, NULL, 10);
    _pa_options.sample_ms = ms < 0 ? 0 : ms > 3600000 ? 3600000 : (int)ms;
  }
  option_copy(_pa_options.sample_path, getenv("POOLALLOC_SAMPLE_FILE"));
  option_copy(_pa_options.snapshot_path, getenv("POOLALLOC_SNAPSHOT"));
  option_fail_maps(getenv("POOLALLOC_FAIL_MAPS"));
  option_arena_decay(getenv("POOLALLOC_ARENA_DECAY_MS"));
  if (_pa_options.show_stats && stats_path[0] == '\0')
    stats_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 100);
  if (_pa_options.verbose)
    _pa_message("poolalloc: options: POOLALLOC_SHOW_STATS=%d POOLALLOC_VERBOSE=1 "
               "POOLALLOC_DEBUG=%d POOLALLOC_TRACE=%d POOLALLOC_SAMPLE=%d "
               "POOLALLOC_ARENA_DECAY_MS=%ld; "
               "classes %zu bytes apart up to %d, pools %zu bytes, arenas %zu bytes%s",
               _pa_options.show_stats, _pa_options.debug, _pa_options.trace, _pa_options.sample_ms,
               _pa_options.arena_decay_ms,
               PA_ALIGNMENT, PA_SMALL_REQUEST_THRESHOLD, PA_POOL_SIZE, PA_ARENA_SIZE,
               PA_SECURE ? "; secure build" : "");
}

void _pa_message(const char *format, ...) {
  char line[256];
  va_list args;
  va_start(args, format);
  int n = vsnprintf(line, sizeof line - 1, format, args);
  va_end(args);
  if (n < 0) return;
  if ((size_t)n > sizeof line - 2) n = sizeof line - 2;
  line[n++] = '\n';
  ssize_t ignored = write(STDERR_FILENO, line, (size_t)n);
  (void)ignored;
}

/* POOLALLOC_SHOW_STATS: what passed through each layer, and the peaks. */
__attribute__((destructor)) static void options_show_stats_at_exit(void) {
  if (!_pa_options.show_stats) return;
  char path[PA_OPTION_PATH_MAX];
  int fd = _pa_options_expand_path(stats_path, path, sizeof path)
               ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)
               : stats_fd;
  if (fd < 0) return;
  FILE *out = fdopen(fd, "w");
  if (out == NULL) return;
  /* One buffer for the whole report: a single write(2), so reports of
   * processes exiting together do not interleave in an appended file. */
  static char report[64 * 1024];
  setvbuf(out, report, _IOFBF, sizeof report);
  fprintf(out, "poolalloc statistics at exit of process %d:\n", (int)getpid());
  pa_stats_print(out);
  fclose(out);
}
