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
 * line formatted on the stack and one write(2).
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
} sampler = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

/* Bytes the program holds: blocks handed out by the pools and the raw
 * layer's live bytes. */
static size_t live_bytes(const struct pa_stats *s) {
  return s->bytes_in_use + s->raw_bytes_in_use;
}

static size_t sample_write(void) {
  struct pa_stats s;
  pa_stats_get(&s);
  size_t live = live_bytes(&s);
  if (sampler.fd < 0) return live;
  char line[256];
  int n = snprintf(line, sizeof line,
                   "{\"t\":%llu,\"live\":%zu,\"arenas\":%zu,\"released\":%zu,\"rss\":%zu,"
                   "\"heaps\":%zu}\n",
                   (unsigned long long)(os_monotonic_ms() - sampler.start_ms), live,
                   s.arenas_current, s.arenas_released, os_resident_bytes(), s.heaps);
  if (n > 0 && (size_t)n < sizeof line) {
    ssize_t ignored = write(sampler.fd, line, (size_t)n);
    (void)ignored;
  }
  return live;
}

/* Called with the lock held. */
static void sample_take(void) {
  size_t live = sample_write();
  if (pa_options.snapshot_path[0] == '\0' || live <= sampler.peak_live) return;
  struct snapshot *snap = snapshot_capture();
  if (snap == NULL) return;
  snapshot_release(sampler.peak);
  sampler.peak = snap;
  sampler.peak_live = live;
}

static void *sampler_main(void *arg) {
  (void)arg;
  struct timespec interval = {pa_options.sample_ms / 1000,
                              (long)(pa_options.sample_ms % 1000) * 1000000};
  for (;;) {
    nanosleep(&interval, NULL);
    pthread_mutex_lock(&sampler.lock);
    if (sampler.stopped) {
      pthread_mutex_unlock(&sampler.lock);
      return NULL;
    }
    sample_take();
    pthread_mutex_unlock(&sampler.lock);
  }
}

/* Programs that set these variables themselves before their first malloc
 * (tests do) get them; the options are read here only when they are set. */
__attribute__((constructor)) static void sampler_start(void) {
  if (getenv("POOLALLOC_SAMPLE") == NULL && getenv("POOLALLOC_SNAPSHOT") == NULL) return;
  domain_layer(PA_DOMAIN_MEM); /* reads the options */
  if (pa_options.sample_ms <= 0) return;
  char path[PA_OPTION_PATH_MAX];
  if (options_expand_path(pa_options.sample_path, path, sizeof path))
    sampler.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  sampler.start_ms = os_monotonic_ms();
  sample_take();
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t thread;
  if (pthread_create(&thread, &attr, sampler_main, NULL) != 0)
    pa_message("poolalloc: cannot start the sampling thread; sampling is off");
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void snapshot_file_write(FILE *out, const struct snapshot *at_exit) {
  fprintf(out, "{\"pid\":%d,\"sample_ms\":%d,\"exit\":", (int)getpid(), pa_options.sample_ms);
  snapshot_write(out, at_exit);
  fputs(",\"peak\":", out);
  if (sampler.peak)
    snapshot_write(out, sampler.peak);
  else
    fputs("null", out);
  fputs("}\n", out);
}

__attribute__((destructor)) static void sampler_at_exit(void) {
  pthread_mutex_lock(&sampler.lock);
  sampler.stopped = true;
  if (pa_options.sample_ms > 0) sample_write();
  char path[PA_OPTION_PATH_MAX];
  if (options_expand_path(pa_options.snapshot_path, path, sizeof path)) {
    struct snapshot *at_exit = snapshot_capture();
    FILE *out = at_exit ? fopen(path, "we") : NULL;
    if (out) {
      snapshot_file_write(out, at_exit);
      if (fclose(out) != 0) pa_message("poolalloc: could not write the snapshot to %s", path);
    } else {
      pa_message("poolalloc: could not write the snapshot to %s", path);
    }
    snapshot_release(at_exit);
  }
  pthread_mutex_unlock(&sampler.lock);
}
