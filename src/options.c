/*
 * Options from the environment, read once when the process starts
 * (src/start.c), before the first heap is made.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct _pa_options _pa_options = {.arena_decay_ms = PA_ARENA_DECAY_DEFAULT_MS,
                                  .large_cache_mb = PA_LARGE_CACHE_DEFAULT_MB};

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

/* The variable name's number, 0 to max (in unit), or fallback when it is
 * unset or out of range (said so on stderr). */
static long option_number(const char *name, long fallback, long max, const char *unit) {
  const char *text = getenv(name);
  if (text == NULL || *text == '\0') return fallback;
  char *end;
  long long n = strtoll(text, &end, 10);
  if (*end != '\0' || n < 0 || n > max) {
    _pa_message("poolalloc: %s=%s ignored: expected 0 to %ld (%s)", name, text, max, unit);
    return fallback;
  }
  return (long)n;
}

static void options_read(void) {
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
  _pa_options.arena_decay_ms = option_number("POOLALLOC_ARENA_DECAY_MS", PA_ARENA_DECAY_DEFAULT_MS,
                                              PA_ARENA_DECAY_MAX_MS, "ms");
  _pa_options.large_cache_mb = option_number("POOLALLOC_LARGE_CACHE_MB", PA_LARGE_CACHE_DEFAULT_MB,
                                             PA_LARGE_CACHE_MAX_MB, "MiB");
  if (_pa_options.show_stats && stats_path[0] == '\0')
    stats_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 100);
  if (_pa_options.verbose)
    _pa_message("poolalloc: options: POOLALLOC_SHOW_STATS=%d POOLALLOC_VERBOSE=1 "
               "POOLALLOC_DEBUG=%d POOLALLOC_TRACE=%d POOLALLOC_SAMPLE=%d "
               "POOLALLOC_ARENA_DECAY_MS=%ld POOLALLOC_LARGE_CACHE_MB=%ld; "
               "classes %zu bytes apart up to %d, pools %zu bytes, arenas %zu bytes%s",
               _pa_options.show_stats, _pa_options.debug, _pa_options.trace, _pa_options.sample_ms,
               _pa_options.arena_decay_ms, _pa_options.large_cache_mb,
               PA_ALIGNMENT, PA_SMALL_REQUEST_THRESHOLD, PA_POOL_SIZE, PA_ARENA_SIZE,
               PA_SECURE ? "; secure build" : "");
}

/* Once: the start reads them, and tracing may ask first (pa_trace_frames). */
void _pa_options_init(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, options_read);
}

/* Where POOLALLOC_SHOW_STATS sends the statistics at exit: the file it
 * names, opened to append, or the copy of stderr; -1 if none. */
int _pa_options_stats_fd(void) {
  if (!_pa_options.show_stats) return -1;
  char path[PA_OPTION_PATH_MAX];
  return _pa_options_expand_path(stats_path, path, sizeof path)
             ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)
             : stats_fd;
}
