/*
 * Sampling over a run, and the heap snapshot at exit: what `poolalloc run`
 * asks of the process it runs, through the environment.
 *
 *   POOLALLOC_SAMPLE=MS         a thread takes a sample every MS ms: live
 *                               bytes, arenas held and released, RSS; one
 *                               JSON line each, to
 *   POOLALLOC_SAMPLE_FILE=PATH  (%p in PATH is the process id)
 *   POOLALLOC_SNAPSHOT=PATH     at exit, a JSON file with the heap snapshot
 *                               at exit and, when sampling, the snapshot of
 *                               the sample with the most live bytes
 *
 * The sampling thread blocks every signal, so signals reach the program's
 * own threads, and never calls malloc: a sample is a statistics walk, a
 * line formatted on the stack and one write(2).  Before each sample it
 * releases the wholly free arenas past their decay delay (src/arena.c), so
 * a program that frees its memory and then idles is seen giving it back.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static struct {
  pthread_mutex_t lock; /* guards everything below once the thread runs */
  int fd;               /* the samples file, or -1 */
  uint64_t start_ms;
  size_t peak_live;
  struct snapshot *peak; /* the heap at the sample with the most live bytes */
  bool stopped;          /* the process is exiting: no more samples */
  bool running;          /* the thread was started */
  pthread_t thread;
} sampler = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

/* Bytes the program holds: blocks handed out by the pools and the raw
 * layer's live bytes. */
static size_t live_bytes(const struct pa_stats *s) {
  return s->bytes_in_use + s->raw_bytes_in_use;
}

static void sample_write(const struct pa_stats *s) {
  if (sampler.fd < 0) return;
  char line[256];
  int n = snprintf(line, sizeof line,
                   "{\"t\":%llu,\"live\":%zu,\"arenas\":%zu,\"released\":%zu,\"rss\":%zu,"
                   "\"heaps\":%zu}\n",
                   (unsigned long long)(_pa_os_monotonic_ms() - sampler.start_ms), live_bytes(s),
                   s->arenas_current, s->arenas_released, _pa_os_resident_bytes(), s->heaps);
  if (n > 0 && (size_t)n < sizeof line) {
    ssize_t ignored = write(sampler.fd, line, (size_t)n);
    (void)ignored;
  }
}

/* Called with the lock held.  When the peak snapshot is wanted, each sample
 * is a snapshot (one walk gives both), kept if it holds the most live bytes
 * so far; otherwise a sample is a statistics walk. */
static void sample_take(void) {
  if (_pa_options.snapshot_path[0] == '\0') {
    struct pa_stats s;
    pa_stats_get(&s);
    sample_write(&s);
    return;
  }
  struct snapshot *snap = _pa_snapshot_capture();
  if (snap == NULL) return;
  sample_write(&snap->stats);
  size_t live = live_bytes(&snap->stats);
  if (sampler.peak != NULL && live <= sampler.peak_live) {
    _pa_snapshot_release(snap);
    return;
  }
  _pa_snapshot_release(sampler.peak);
  sampler.peak = snap;
  sampler.peak_live = live;
}

static void *sampler_main(void *arg) {
  (void)arg;
  struct timespec interval = {_pa_options.sample_ms / 1000,
                              (long)(_pa_options.sample_ms % 1000) * 1000000};
  for (;;) {
    nanosleep(&interval, NULL);
    _pa_arenas_decay_idle();
    pthread_mutex_lock(&sampler.lock);
    if (sampler.stopped) {
      pthread_mutex_unlock(&sampler.lock);
      return NULL;
    }
    sample_take();
    pthread_mutex_unlock(&sampler.lock);
  }
}

/* Called at load (src/runtime.c) once the options are read. */
void _pa_sampler_start(void) {
  if (_pa_options.sample_ms <= 0) return;
  char path[PA_OPTION_PATH_MAX];
  if (_pa_options_expand_path(_pa_options.sample_path, path, sizeof path))
    sampler.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  sampler.start_ms = _pa_os_monotonic_ms();
  sample_take();
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&sampler.thread, &attr, sampler_main, NULL) == 0)
    sampler.running = true;
  else
    _pa_message("poolalloc: cannot start the sampling thread; sampling is off");
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static uint64_t cpu_us(clockid_t clock) {
  struct timespec t;
  if (clock_gettime(clock, &t) != 0) return 0;
  return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

/* CPU time the sampling thread used: what sampling cost the program. */
static uint64_t sampler_cpu_us(void) {
  clockid_t clock;
  if (!sampler.running || pthread_getcpuclockid(sampler.thread, &clock) != 0) return 0;
  return cpu_us(clock);
}

/* The file ends with what sampling and this exit report cost in CPU time,
 * so `poolalloc run` can say what it cost the program. */
static void snapshot_file_write(FILE *out, const struct snapshot *at_exit, uint64_t started_us) {
  fprintf(out, "{\"pid\":%d,\"sample_ms\":%d,\"exit\":", (int)getpid(), _pa_options.sample_ms);
  _pa_snapshot_write(out, at_exit);
  fputs(",\"peak\":", out);
  if (sampler.peak)
    _pa_snapshot_write(out, sampler.peak);
  else
    fputs("null", out);
  fprintf(out, ",\"sampler_cpu_us\":%llu,\"exit_report_cpu_us\":%llu}\n",
          (unsigned long long)sampler_cpu_us(),
          (unsigned long long)(cpu_us(CLOCK_THREAD_CPUTIME_ID) - started_us));
}

void _pa_sampler_at_exit(void) {
  uint64_t started_us = cpu_us(CLOCK_THREAD_CPUTIME_ID);
  pthread_mutex_lock(&sampler.lock);
  sampler.stopped = true;
  char path[PA_OPTION_PATH_MAX];
  bool want_snapshot = _pa_options_expand_path(_pa_options.snapshot_path, path, sizeof path);
  struct snapshot *at_exit = want_snapshot ? _pa_snapshot_capture() : NULL;
  if (_pa_options.sample_ms > 0) { /* the last sample: from the snapshot's walk if there is one */
    struct pa_stats s;
    if (at_exit == NULL) pa_stats_get(&s);
    sample_write(at_exit ? &at_exit->stats : &s);
  }
  if (want_snapshot) {
    FILE *out = at_exit ? fopen(path, "we") : NULL;
    if (out) {
      snapshot_file_write(out, at_exit, started_us);
      if (fclose(out) != 0) _pa_message("poolalloc: could not write the snapshot to %s", path);
    } else {
      _pa_message("poolalloc: could not write the snapshot to %s", path);
    }
    _pa_snapshot_release(at_exit);
  }
  pthread_mutex_unlock(&sampler.lock);
}
